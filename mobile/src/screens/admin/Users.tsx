import { useFocusEffect } from 'expo-router';
import { useCallback, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { type Clinic, createUser, listClinics, listUsers, unlockUser, updateUser, type User } from '../../api/admin';
import type { Schemas } from '../../api/client-types';
import { describeError, fieldErrors } from '../../api/errors';
import { Badge, Banner, Button, Card, Choice, colors, font, Screen, space, TextField } from '../../ui';

type Role = Schemas['Role'];
const ROLE_LABELS: Record<Role, string> = { clinician: 'Clinician', dermatologist: 'Dermatologist', admin: 'Administrator' };

/** Accounts: create, disable or re-enable, and reset a lock-out after failed sign-ins. */
export default function Users() {
  const [users, setUsers] = useState<User[] | null>(null);
  const [loadedAt, setLoadedAt] = useState(0);
  const [clinics, setClinics] = useState<Clinic[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('clinician');
  const [clinicId, setClinicId] = useState<string>('');
  const [password, setPassword] = useState('');

  const load = useCallback(async () => {
    try {
      const [page, cl] = await Promise.all([listUsers(), listClinics()]);
      setUsers(page.items);
      setLoadedAt(Date.now());
      setClinics(cl);
    } catch (e) {
      setError(describeError(e));
    }
  }, []);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const act = async (key: string, work: () => Promise<unknown>, done: string) => {
    setBusy(key);
    setError(null);
    setNotice(null);
    setFields({});
    try {
      await work();
      setNotice(done);
      await load();
    } catch (e) {
      setError(describeError(e));
      setFields(fieldErrors(e));
    } finally {
      setBusy(null);
    }
  };

  const create = () =>
    act(
      'create',
      async () => {
        await createUser({ email: email.trim(), full_name: name.trim(), role, password, clinic_id: role === 'clinician' ? clinicId || null : null });
        setEmail('');
        setName('');
        setPassword('');
      },
      `Account created for ${name.trim()}. Share the password with them securely.`,
    );

  return (
    <Screen title="Users" loading={users === null && !error} testID="users-screen" wide>
      {error ? <Banner tone="danger" message={error} testID="users-error" /> : null}
      {notice ? <Banner tone="success" message={notice} testID="users-notice" /> : null}
      <Card title="Create an account">
        <View style={styles.grid}>
          <View style={styles.cell}>
            <TextField label="Full name" value={name} onChangeText={setName} testID="user-name" error={fields.full_name} />
          </View>
          <View style={styles.cell}>
            <TextField label="E-mail" value={email} onChangeText={setEmail} autoCapitalize="none" keyboardType="email-address" testID="user-email" error={fields.email} />
          </View>
          <View style={styles.cell}>
            <TextField label="Initial password" value={password} onChangeText={setPassword} secureTextEntry testID="user-password" error={fields.password} />
          </View>
        </View>
        <Choice label="Role" options={(Object.keys(ROLE_LABELS) as Role[]).map((r) => ({ value: r, label: ROLE_LABELS[r] }))} value={role} onChange={setRole} testID="user-role" />
        {role === 'clinician' ? (
          <Choice label="Clinic" options={clinics.map((c) => ({ value: c.id, label: c.name }))} value={clinicId} onChange={setClinicId} testID="user-clinic" />
        ) : null}
        <Button title="Create account" onPress={create} busy={busy === 'create'} disabled={!email || !name || !password || (role === 'clinician' && !clinicId)} testID="user-create" />
      </Card>
      <Card title="Accounts">
        {users?.map((u) => {
          const locked = !!u.locked_until && Date.parse(u.locked_until) > loadedAt;
          return (
            <View key={u.id} style={styles.row} testID={`user-${u.email}`}>
              <View style={styles.info}>
                <Text style={styles.name}>{u.full_name}</Text>
                <Text style={styles.meta}>{`${u.email} · ${ROLE_LABELS[u.role]}${u.clinic_id ? ` · ${clinics.find((c) => c.id === u.clinic_id)?.name ?? 'clinic'}` : ''}`}</Text>
              </View>
              <View style={styles.badges}>
                <Badge label={u.is_active ? 'Active' : 'Disabled'} tone={u.is_active ? 'success' : 'neutral'} />
                {u.totp_enabled ? <Badge label="2-step on" tone="info" /> : null}
                {locked ? <Badge label="Locked" tone="warning" /> : null}
              </View>
              <View style={styles.actions}>
                {locked ? (
                  <Button compact variant="secondary" title="Reset lock-out" busy={busy === `unlock-${u.id}`} onPress={() => act(`unlock-${u.id}`, () => unlockUser(u.id), `${u.full_name} can sign in again.`)} testID={`unlock-${u.email}`} />
                ) : null}
                <Button
                  compact
                  variant={u.is_active ? 'ghost' : 'secondary'}
                  title={u.is_active ? 'Disable' : 'Enable'}
                  busy={busy === `toggle-${u.id}`}
                  onPress={() =>
                    act(`toggle-${u.id}`, () => updateUser(u.id, { is_active: !u.is_active }), `${u.full_name} is now ${u.is_active ? 'disabled' : 'enabled'}.`)
                  }
                  testID={`toggle-${u.email}`}
                />
              </View>
            </View>
          );
        })}
      </Card>
    </Screen>
  );
}

const styles = StyleSheet.create({
  grid: { flexDirection: 'row', flexWrap: 'wrap', columnGap: space.md },
  cell: { flexGrow: 1, flexBasis: 220 },
  row: { flexDirection: 'row', flexWrap: 'wrap', alignItems: 'center', gap: space.md, paddingVertical: space.sm, borderTopWidth: 1, borderTopColor: colors.border },
  info: { flexGrow: 1, flexBasis: 240 },
  name: { fontSize: font.body, fontWeight: '600', color: colors.text },
  meta: { fontSize: font.small, color: colors.muted },
  badges: { flexDirection: 'row', gap: space.xs },
  actions: { flexDirection: 'row', gap: space.xs },
});
