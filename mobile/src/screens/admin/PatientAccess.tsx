import { useState } from 'react';
import { StyleSheet, View } from 'react-native';

import { describeError } from '../../api/errors';
import { breakGlass, erasePatient, type Patient } from '../../api/patients';
import { formatDate, formatDay } from '../../components/format';
import { Banner, Button, Card, Choice, Field, Muted, Screen, space, TextField } from '../../ui';

type Basis = 'patient_request' | 'consent_withdrawn';
const MIN_REASON = 10;

/** Break-glass access and erasure: both need a stated reason (recorded in the audit trail) and a confirmation. */
export default function PatientAccess() {
  const [patientId, setPatientId] = useState('');
  const [reason, setReason] = useState('');
  const [confirm, setConfirm] = useState<'break-glass' | 'erase' | null>(null);
  const [basis, setBasis] = useState<Basis>('patient_request');
  const [typed, setTyped] = useState('');
  const [patient, setPatient] = useState<Patient | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async () => {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      if (confirm === 'break-glass') {
        setPatient(await breakGlass(patientId.trim(), reason.trim()));
        setNotice('Emergency access granted and recorded in the audit trail.');
      } else if (confirm === 'erase') {
        const out = await erasePatient(patientId.trim(), { reason: reason.trim(), basis });
        setPatient(null);
        setNotice(`Patient data erased at ${formatDate(out.erased_at)} (${out.blobs_deleted} stored files deleted).`);
      }
      setConfirm(null);
      setTyped('');
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const ready = patientId.trim().length > 0 && reason.trim().length >= MIN_REASON;
  return (
    <Screen title="Break-glass and erasure" subtitle="Use only when you must. The reason you give is stored in the audit trail." testID="patient-access-screen">
      {error ? <Banner tone="danger" message={error} testID="patient-access-error" /> : null}
      {notice ? <Banner tone="success" message={notice} testID="patient-access-notice" /> : null}
      <Card title="Patient and reason">
        <TextField label="Patient ID" value={patientId} onChangeText={setPatientId} autoCapitalize="none" testID="access-patient-id" />
        <TextField
          label="Reason"
          hint={`At least ${MIN_REASON} characters, e.g. the ticket number and why`}
          value={reason}
          onChangeText={setReason}
          multiline
          testID="access-reason"
        />
        <View style={styles.row}>
          <Button variant="secondary" title="Break-glass access…" disabled={!ready} onPress={() => setConfirm('break-glass')} testID="break-glass" />
          <Button variant="danger" title="Erase patient data…" disabled={!ready} onPress={() => setConfirm('erase')} testID="erase" />
        </View>
      </Card>
      {confirm === 'break-glass' ? (
        <Card title="Confirm emergency access">
          <Banner tone="warning" message="You will see this patient's record although it is outside your normal access. This is recorded with your reason." />
          <View style={styles.row}>
            <Button title="Confirm access" onPress={run} busy={busy} testID="break-glass-confirm" />
            <Button variant="ghost" title="Cancel" onPress={() => setConfirm(null)} />
          </View>
        </Card>
      ) : null}
      {confirm === 'erase' ? (
        <Card title="Confirm erasure">
          <Banner tone="danger" message="Erasure destroys this patient's photos and personal data for good. It cannot be undone." />
          <Choice
            label="Legal basis"
            options={[
              { value: 'patient_request', label: 'The patient asked for erasure' },
              { value: 'consent_withdrawn', label: 'Consent was withdrawn' },
            ]}
            value={basis}
            onChange={setBasis}
            testID="erase-basis"
          />
          <TextField label='Type "ERASE" to confirm' value={typed} onChangeText={setTyped} autoCapitalize="characters" testID="erase-typed" />
          <View style={styles.row}>
            <Button variant="danger" title="Erase for good" onPress={run} busy={busy} disabled={typed.trim() !== 'ERASE'} testID="erase-confirm" />
            <Button variant="ghost" title="Cancel" onPress={() => setConfirm(null)} />
          </View>
        </Card>
      ) : null}
      {patient ? (
        <Card title="Patient record (break-glass)">
          <Field label="Name" value={patient.identity.full_name} testID="access-patient-name" />
          <Field label="Date of birth" value={formatDay(patient.identity.date_of_birth)} />
          <Field label="Record number" value={patient.identity.medical_record_number} />
          <Field label="Contact" value={patient.identity.contact} />
          <Muted>{`Clinic ${patient.clinic_id}`}</Muted>
        </Card>
      ) : null}
    </Screen>
  );
}

const styles = StyleSheet.create({ row: { flexDirection: 'row', flexWrap: 'wrap', gap: space.sm } });
