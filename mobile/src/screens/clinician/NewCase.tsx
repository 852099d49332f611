import * as ImagePicker from 'expo-image-picker';
import { useLocalSearchParams, useRouter } from 'expo-router';
import { useEffect, useState } from 'react';
import { Image, StyleSheet, Text, View } from 'react-native';

import type { Schemas } from '../../api/client-types';
import { describeError, fieldErrors } from '../../api/errors';
import { type Lesion, listLesions } from '../../api/lesions';
import { getPatient, type Patient } from '../../api/patients';
import { useSession } from '../../auth/session';
import { formatDay } from '../../components/format';
import { clearDraft, type Draft, draftFor, saveDraft } from '../../components/drafts';
import { prepareImage } from '../../images/prepare';
import { RETAKE_GUIDANCE } from '../../images/quality';
import { sendOrQueue } from '../../offline/outbox';
import { Badge, Banner, Button, Card, Choice, colors, font, Muted, radius, Screen, space, TextField } from '../../ui';

type Site = Draft['site'];
const SITES: Site[] = [
  'face', 'scalp', 'ear', 'neck', 'chest', 'abdomen', 'back', 'trunk', 'upper extremity', 'hand',
  'lower extremity', 'foot', 'acral', 'genital', 'unknown',
];
const HISTORY: { value: keyof Draft['history']; label: string }[] = [
  { value: 'new', label: 'New lesion' },
  { value: 'changed', label: 'Changed recently' },
  { value: 'bleeding', label: 'Bleeding' },
  { value: 'itching', label: 'Itching' },
];
const MAX_IMAGES = 4;

/** A tracked lesion in words: where it is, and when it was first photographed. */
function lesionName(lesion: Lesion): string {
  const where = [lesion.site === 'unknown' ? '' : `on the ${lesion.site}`, lesion.label].filter(Boolean).join(', ');
  return `the lesion ${where || 'at an unrecorded site'} (since ${formatDay(lesion.created_at)})`;
}

/** A new case: photos checked on the device, the clinical context, and a submission that survives a lost connection. */
export default function NewCase() {
  const { id } = useLocalSearchParams<{ id: string }>();
  const router = useRouter();
  const { user } = useSession();
  const [patient, setPatient] = useState<Patient | null>(null);
  const [draft, setDraftState] = useState<Draft>(() => draftFor(id));
  const [busy, setBusy] = useState(false);
  const [preparing, setPreparing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});

  const [lesions, setLesions] = useState<Lesion[]>([]);

  useEffect(() => {
    getPatient(id).then(setPatient, (e) => setError(describeError(e)));
    // Without the list the case is simply a new lesion: no error for the clinician to act on.
    listLesions(id).then(setLesions, () => setLesions([]));
  }, [id]);

  const update = (change: Partial<Draft>) => {
    const next = { ...draft, ...change };
    saveDraft(id, next);
    setDraftState(next);
  };

  const pick = async (source: 'camera' | 'library') => {
    setError(null);
    const options: ImagePicker.ImagePickerOptions = { mediaTypes: ['images'], quality: 1, exif: false };
    try {
      if (source === 'camera') {
        const permission = await ImagePicker.requestCameraPermissionsAsync();
        if (!permission.granted) {
          setError('DermaLink needs the camera to photograph the lesion. Allow it in the phone settings, or choose a photo instead.');
          return;
        }
      }
      const result = source === 'camera' ? await ImagePicker.launchCameraAsync(options) : await ImagePicker.launchImageLibraryAsync(options);
      if (result.canceled || !result.assets?.length) return;
      setPreparing(true);
      const prepared = await prepareImage(result.assets[0]);
      update({ images: [...draft.images, prepared].slice(0, MAX_IMAGES) });
    } catch {
      setError('The photo could not be read. Try taking it again.');
    } finally {
      setPreparing(false);
    }
  };

  const submit = async () => {
    if (!user || !patient) return;
    setBusy(true);
    setError(null);
    setFields({});
    const age = draft.age.trim() ? Number(draft.age) : null;
    const metadata: Schemas['CaseCreate'] = {
      patient_id: id,
      lesion_id: draft.lesionId,
      age: age !== null && Number.isFinite(age) ? age : null,
      sex: draft.sex,
      site: draft.site,
      history: draft.history,
      concern: draft.concern,
      wants_specialist: draft.wantsSpecialist,
      notes: draft.notes.trim() || null,
    };
    try {
      const outcome = await sendOrQueue(
        {
          idempotencyKey: draft.idempotencyKey,
          ownerId: user.id,
          patientLabel: patient.identity.full_name,
          metadata,
          images: draft.images.map(({ base64, width, height }) => ({ base64, width, height })),
          queuedAt: new Date().toISOString(),
          attempts: 0,
          lastError: null,
        },
        draft.images,
      );
      clearDraft(id);
      if (outcome.status === 'sent') router.replace(`/clinician/cases/${outcome.case.id}`);
      else router.replace({ pathname: '/clinician/cases', params: { queued: outcome.reason } });
    } catch (e) {
      setError(describeError(e));
      setFields(fieldErrors(e));
    } finally {
      setBusy(false);
    }
  };

  const poor = draft.images.some((i) => !i.quality.ok);
  return (
    <Screen title="New case" subtitle={patient ? `For ${patient.identity.full_name}` : undefined} testID="new-case-screen">
      {error ? <Banner tone="danger" message={error} testID="new-case-error" /> : null}
      <Card title="Which lesion?">
        <Choice
          label="This case is"
          options={[
            { value: 'new', label: 'A new lesion' },
            ...lesions.map((l) => ({ value: l.id, label: `A follow-up photo of ${lesionName(l)}` })),
          ]}
          value={draft.lesionId ?? 'new'}
          onChange={(v) => {
            const lesion = lesions.find((l) => l.id === v);
            update(lesion ? { lesionId: lesion.id, site: lesion.site as Site } : { lesionId: null });
          }}
          testID="case-lesion"
        />
        {draft.lesionId ? <Muted>{"The new photo is compared with this lesion's last photo. Take it the same way: same distance, light and angle."}</Muted> : null}
      </Card>
      <Card title="Photos of the lesion">
        <Muted>Fill the frame with the lesion, in good light, without flash. Up to 4 photos.</Muted>
        <View style={styles.thumbs}>
          {draft.images.map((image, i) => (
            <View key={image.uri + i} style={styles.thumb} testID={`case-image-${i}`}>
              <Image source={{ uri: `data:image/jpeg;base64,${image.base64}` }} style={styles.thumbImage} accessibilityLabel={`Photo ${i + 1}`} />
              <Badge label={image.quality.ok ? 'Quality OK' : 'Retake advised'} tone={image.quality.ok ? 'success' : 'warning'} />
              {image.quality.problems.map((p) => (
                <Text key={p} style={styles.guidance} testID={`quality-${p}`}>
                  {RETAKE_GUIDANCE[p]}
                </Text>
              ))}
              <Button compact variant="ghost" title="Remove" onPress={() => update({ images: draft.images.filter((_, j) => j !== i) })} testID={`case-image-remove-${i}`} />
            </View>
          ))}
        </View>
        {poor ? <Banner tone="warning" message="A photo may be hard to assess. Retake it if you can; otherwise it is sent to a dermatologist for review." /> : null}
        <View style={styles.row}>
          <Button title="Take photo" onPress={() => pick('camera')} busy={preparing} disabled={draft.images.length >= MAX_IMAGES} testID="case-take-photo" />
          <Button
            variant="secondary"
            title="Choose from library"
            onPress={() => pick('library')}
            busy={preparing}
            disabled={draft.images.length >= MAX_IMAGES}
            testID="case-pick-library"
          />
        </View>
      </Card>
      <Card title="Clinical context">
        <TextField label="Age (years)" value={draft.age} onChangeText={(age) => update({ age })} keyboardType="number-pad" testID="case-age" error={fields.age} />
        <Choice
          label="Sex"
          options={[
            { value: 'female', label: 'Female' },
            { value: 'male', label: 'Male' },
            { value: 'unknown', label: 'Not stated' },
          ]}
          value={draft.sex ?? 'unknown'}
          onChange={(sex) => update({ sex })}
          testID="case-sex"
        />
        <Choice label="Body site" options={SITES.map((s) => ({ value: s, label: s[0].toUpperCase() + s.slice(1) }))} value={draft.site} onChange={(site) => update({ site })} testID="case-site" />
        <Choice
          label="History"
          options={HISTORY}
          value={HISTORY.filter((h) => draft.history[h.value]).map((h) => h.value)}
          onChange={(k) => update({ history: { ...draft.history, [k]: !draft.history[k] } })}
          testID="case-history"
        />
        <Choice
          label="Your level of concern"
          options={[
            { value: 'low', label: 'Low' },
            { value: 'medium', label: 'Medium' },
            { value: 'high', label: 'High' },
          ]}
          value={draft.concern}
          onChange={(concern) => update({ concern })}
          testID="case-concern"
        />
        <Choice
          label="Ask a dermatologist whatever the AI says?"
          options={[
            { value: 'no', label: 'No' },
            { value: 'yes', label: 'Yes' },
          ]}
          value={draft.wantsSpecialist ? 'yes' : 'no'}
          onChange={(v) => update({ wantsSpecialist: v === 'yes' })}
          testID="case-specialist"
        />
        <TextField label="Notes (optional)" value={draft.notes} onChangeText={(notes) => update({ notes })} multiline testID="case-notes" error={fields.notes} />
      </Card>
      <Button title="Submit case" onPress={submit} busy={busy} disabled={!draft.images.length || !patient} testID="case-submit" />
      <Text style={styles.footnote}>If there is no connection, the case is kept on this device and sent automatically later.</Text>
    </Screen>
  );
}

const styles = StyleSheet.create({
  thumbs: { flexDirection: 'row', flexWrap: 'wrap', gap: space.md, marginVertical: space.sm },
  thumb: { width: 200, gap: space.xs },
  thumbImage: { width: 200, height: 150, borderRadius: radius.md, backgroundColor: colors.border },
  guidance: { fontSize: font.small, color: colors.warning, lineHeight: 18 },
  row: { flexDirection: 'row', flexWrap: 'wrap', gap: space.sm },
  footnote: { fontSize: font.small, color: colors.muted, textAlign: 'center', marginTop: space.md },
});
