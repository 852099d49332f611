import { useRouter } from 'expo-router';
import { useEffect, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { verifyAudit } from '../../api/admin';
import type { Schemas } from '../../api/client-types';
import { describeError } from '../../api/errors';
import { Badge, Banner, Button, Card, colors, font, Screen, space } from '../../ui';

const SECTIONS = [
  { href: '/admin/audit', title: 'Audit trail', text: 'Search who accessed what, page through events, export CSV.', testID: 'nav-audit' },
  { href: '/admin/users', title: 'Users', text: 'Create accounts, disable them, unlock locked-out users.', testID: 'nav-users' },
  { href: '/admin/clinics', title: 'Clinics', text: 'The clinics that clinicians belong to.', testID: 'nav-clinics' },
  { href: '/admin/consent', title: 'Consent documents', text: 'Publish a new version of the consent text.', testID: 'nav-consent' },
  { href: '/admin/patients', title: 'Break-glass and erasure', text: 'Emergency access to a patient, or erase their data, with a stated reason.', testID: 'nav-patients' },
] as const;

/** The administrator's start: the audit trail's integrity at a glance, and the admin sections. */
export default function AdminHome() {
  const router = useRouter();
  const [verify, setVerify] = useState<Schemas['VerifyOut'] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    verifyAudit().then(setVerify, (e) => setError(describeError(e)));
  }, []);

  return (
    <Screen title="Administration" subtitle="Accounts, consent texts and the audit trail." testID="admin-home" wide>
      <Card
        title="Audit trail integrity"
        right={verify ? <Badge label={verify.ok ? 'Intact' : 'Tampering detected'} tone={verify.ok ? 'success' : 'danger'} testID="verify-badge" /> : null}
      >
        {error ? <Banner tone="danger" message={error} /> : null}
        {verify ? (
          <Text style={styles.text} testID="verify-summary">
            {verify.ok
              ? `All ${verify.events} events check out: the hash chain is unbroken.`
              : `${verify.findings.length} problem(s) found in ${verify.events} events: ${verify.findings.map(String).join('; ')}`}
          </Text>
        ) : null}
      </Card>
      <View style={styles.grid}>
        {SECTIONS.map((s) => (
          <Card key={s.href} title={s.title} style={styles.tile}>
            <Text style={styles.text}>{s.text}</Text>
            <Button variant="secondary" compact title={`Open ${s.title.toLowerCase()}`} onPress={() => router.push(s.href)} testID={s.testID} />
          </Card>
        ))}
      </View>
    </Screen>
  );
}

const styles = StyleSheet.create({
  grid: { flexDirection: 'row', flexWrap: 'wrap', gap: space.lg },
  tile: { flexGrow: 1, flexBasis: 300, marginBottom: 0, justifyContent: 'space-between' },
  text: { fontSize: font.body, color: colors.muted, lineHeight: 21 },
});
