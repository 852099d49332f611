import { useFocusEffect, useRouter } from 'expo-router';
import { useCallback, useState } from 'react';
import { Pressable, StyleSheet, Text, View } from 'react-native';

import { describeError, fieldErrors } from '../../api/errors';
import { type DueLesion, listDueLesions } from '../../api/lesions';
import { type Patient, registerPatient, searchPatients } from '../../api/patients';
import { formatDay } from '../../components/format';
import { FollowUpsDue } from '../../components/LesionParts';
import { OutboxBanner } from '../../components/OutboxBanner';
import { recentPatients, rememberPatient } from '../../components/recentPatients';
import { Banner, Button, Card, colors, font, Muted, Screen, space, TextField } from '../../ui';

function PatientRow({ patient, onOpen }: { patient: Patient; onOpen: () => void }) {
  return (
    <Pressable
      accessibilityRole="button"
      accessibilityLabel={`Open ${patient.identity.full_name}`}
      onPress={onOpen}
      style={({ pressed }) => [styles.row, pressed && styles.pressed]}
      testID={`patient-${patient.identity.medical_record_number}`}
    >
      <Text style={styles.name}>{patient.identity.full_name}</Text>
      <Text style={styles.meta}>
        MRN {patient.identity.medical_record_number} · born {formatDay(patient.identity.date_of_birth)}
      </Text>
    </Pressable>
  );
}

/** The clinician's start: find a patient by MRN, or register one. */
export default function Patients() {
  const router = useRouter();
  const [mrn, setMrn] = useState('');
  const [results, setResults] = useState<Patient[] | null>(null);
  const [searching, setSearching] = useState(false);
  const [searchError, setSearchError] = useState<string | null>(null);

  const [fullName, setFullName] = useState('');
  const [dob, setDob] = useState('');
  const [newMrn, setNewMrn] = useState('');
  const [contact, setContact] = useState('');
  const [registering, setRegistering] = useState(false);
  const [registerError, setRegisterError] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});

  const [due, setDue] = useState<DueLesion[] | null>(null);
  const [dueError, setDueError] = useState<string | null>(null);
  useFocusEffect(
    useCallback(() => {
      let alive = true;
      listDueLesions(14).then(
        (rows) => alive && (setDue(rows), setDueError(null)),
        (e) => alive && setDueError(describeError(e)),
      );
      return () => {
        alive = false;
      };
    }, []),
  );

  const open = (patient: Patient) => {
    rememberPatient(patient);
    router.push(`/clinician/patients/${patient.id}`);
  };

  const search = async () => {
    setSearching(true);
    setSearchError(null);
    try {
      setResults(await searchPatients(mrn.trim()));
    } catch (e) {
      setSearchError(describeError(e));
    } finally {
      setSearching(false);
    }
  };

  const register = async () => {
    setRegistering(true);
    setRegisterError(null);
    setFields({});
    try {
      const created = await registerPatient({
        full_name: fullName.trim(),
        date_of_birth: dob.trim(),
        medical_record_number: newMrn.trim(),
        contact: contact.trim() || null,
      });
      open(created);
    } catch (e) {
      setRegisterError(describeError(e));
      setFields(fieldErrors(e));
    } finally {
      setRegistering(false);
    }
  };

  const recent = recentPatients();
  return (
    <Screen title="Patients" subtitle="Find a patient by medical record number, or register a new one." testID="patients-screen">
      <OutboxBanner />
      <View style={styles.nav}>
        <Button variant="secondary" compact title="My cases" onPress={() => router.push('/clinician/cases')} testID="nav-cases" />
      </View>
      {dueError ? <Banner tone="danger" message={dueError} /> : null}
      {due ? <FollowUpsDue lesions={due} onOpen={(lesion) => router.push(`/clinician/patients/${lesion.patient_id}`)} /> : null}
      <Card title="Find a patient">
        <TextField label="Medical record number" value={mrn} onChangeText={setMrn} autoCapitalize="characters" testID="patient-search-mrn" onSubmitEditing={search} />
        <Button title="Search" onPress={search} busy={searching} disabled={!mrn.trim()} testID="patient-search-submit" />
        {searchError ? <Banner tone="danger" message={searchError} /> : null}
        {results && !results.length ? <Muted>No patient in your clinic has this record number. Register them below.</Muted> : null}
        {results?.map((p) => <PatientRow key={p.id} patient={p} onOpen={() => open(p)} />)}
      </Card>
      {recent.length ? (
        <Card title="Opened recently">
          {recent.map((p) => (
            <PatientRow key={p.id} patient={p} onOpen={() => open(p)} />
          ))}
        </Card>
      ) : null}
      <Card title="Register a new patient">
        {registerError ? <Banner tone="danger" message={registerError} testID="register-error" /> : null}
        <TextField label="Full name" value={fullName} onChangeText={setFullName} testID="register-name" error={fields.full_name} />
        <TextField
          label="Date of birth"
          hint="YYYY-MM-DD, e.g. 1961-04-12"
          value={dob}
          onChangeText={setDob}
          testID="register-dob"
          error={fields.date_of_birth}
        />
        <TextField
          label="Medical record number"
          value={newMrn}
          onChangeText={setNewMrn}
          autoCapitalize="characters"
          testID="register-mrn"
          error={fields.medical_record_number}
        />
        <TextField label="Contact (optional)" hint="Phone or e-mail" value={contact} onChangeText={setContact} testID="register-contact" error={fields.contact} />
        <Button
          title="Register patient"
          onPress={register}
          busy={registering}
          disabled={!fullName.trim() || !dob.trim() || !newMrn.trim()}
          testID="register-submit"
        />
      </Card>
    </Screen>
  );
}

const styles = StyleSheet.create({
  nav: { flexDirection: 'row', gap: space.sm, marginBottom: space.lg },
  row: { paddingVertical: space.md, borderTopWidth: 1, borderTopColor: colors.border },
  pressed: { backgroundColor: colors.background },
  name: { fontSize: font.large, fontWeight: '600', color: colors.text },
  meta: { fontSize: font.small, color: colors.muted, marginTop: 2 },
});
