import { useFocusEffect } from 'expo-router';
import { useCallback, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { type Clinic, createClinic, listClinics } from '../../api/admin';
import { describeError } from '../../api/errors';
import { formatDay } from '../../components/format';
import { Banner, Button, Card, colors, font, Muted, Screen, space, TextField } from '../../ui';

/** The clinics clinicians belong to (a clinician sees only their clinic's patients). */
export default function Clinics() {
  const [clinics, setClinics] = useState<Clinic[] | null>(null);
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setClinics(await listClinics());
    } catch (e) {
      setError(describeError(e));
    }
  }, []);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const clinic = await createClinic(name.trim());
      setNotice(`Clinic "${clinic.name}" created.`);
      setName('');
      await load();
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Screen title="Clinics" loading={clinics === null && !error} testID="clinics-screen">
      {error ? <Banner tone="danger" message={error} /> : null}
      {notice ? <Banner tone="success" message={notice} testID="clinics-notice" /> : null}
      <Card title="Add a clinic">
        <TextField label="Clinic name" value={name} onChangeText={setName} testID="clinic-name" />
        <Button title="Add clinic" onPress={create} busy={busy} disabled={!name.trim()} testID="clinic-create" />
      </Card>
      <Card title="Clinics">
        {clinics && !clinics.length ? <Muted>No clinics yet.</Muted> : null}
        {clinics?.map((c) => (
          <View key={c.id} style={styles.row} testID={`clinic-${c.name}`}>
            <Text style={styles.name}>{c.name}</Text>
            <Text style={styles.meta}>{`Created ${formatDay(c.created_at)} · ${c.id}`}</Text>
          </View>
        ))}
      </Card>
    </Screen>
  );
}

const styles = StyleSheet.create({
  row: { paddingVertical: space.sm, borderTopWidth: 1, borderTopColor: colors.border },
  name: { fontSize: font.body, fontWeight: '600', color: colors.text },
  meta: { fontSize: font.small, color: colors.muted },
});
