import { useFocusEffect, useLocalSearchParams, useRouter } from 'expo-router';
import { useCallback, useState } from 'react';
import { StyleSheet, View } from 'react-native';

import { type ConsentStatus, getConsent, SCOPE_LABELS } from '../../api/consent';
import { describeError } from '../../api/errors';
import { getPatient, type Patient } from '../../api/patients';
import { formatDay } from '../../components/format';
import { rememberPatient } from '../../components/recentPatients';
import { Badge, Banner, Button, Card, Field, Muted, Screen, space } from '../../ui';

/** One patient: who they are, what they consented to, and the way to a new case. */
export default function PatientDetail() {
  const { id } = useLocalSearchParams<{ id: string }>();
  const router = useRouter();
  const [patient, setPatient] = useState<Patient | null>(null);
  const [consent, setConsent] = useState<ConsentStatus | null>(null);
  const [error, setError] = useState<string | null>(null);

  useFocusEffect(
    useCallback(() => {
      let alive = true;
      Promise.all([getPatient(id), getConsent(id)]).then(
        ([p, c]) => {
          if (!alive) return;
          rememberPatient(p);
          setPatient(p);
          setConsent(c);
        },
        (e) => alive && setError(describeError(e)),
      );
      return () => {
        alive = false;
      };
    }, [id]),
  );

  const aiConsent = consent?.scopes.find((s) => s.scope === 'ai_analysis')?.active ?? false;
  return (
    <Screen title={patient?.identity.full_name ?? 'Patient'} loading={!patient && !error} testID="patient-screen">
      {error ? <Banner tone="danger" message={error} /> : null}
      {patient ? (
        <Card title="Patient">
          <Field label="Name" value={patient.identity.full_name} testID="patient-name" />
          <Field label="Date of birth" value={formatDay(patient.identity.date_of_birth)} />
          <Field label="Record number" value={patient.identity.medical_record_number} />
          <Field label="Contact" value={patient.identity.contact} />
        </Card>
      ) : null}
      {consent ? (
        <Card title="Consent">
          <View style={styles.badges}>
            {consent.scopes.map((s) => (
              <Badge
                key={s.scope}
                label={`${SCOPE_LABELS[s.scope]}: ${s.active ? (s.needs_reconsent ? 'needs renewal' : 'given') : 'not given'}`}
                tone={s.active ? (s.needs_reconsent ? 'warning' : 'success') : 'neutral'}
                testID={`scope-${s.scope}`}
              />
            ))}
          </View>
          {!aiConsent ? <Muted>Record the patient&apos;s consent before submitting a case: the AI analysis needs it.</Muted> : null}
          <Button variant="secondary" title="Record or change consent" onPress={() => router.push(`/clinician/patients/${id}/consent`)} testID="nav-consent" />
        </Card>
      ) : null}
      {patient ? (
        <Button title="New case" onPress={() => router.push(`/clinician/patients/${id}/new-case`)} disabled={!aiConsent} testID="nav-new-case" />
      ) : null}
    </Screen>
  );
}

const styles = StyleSheet.create({ badges: { gap: space.sm } });
