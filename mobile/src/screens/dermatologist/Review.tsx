import { useFocusEffect, useLocalSearchParams, useRouter } from 'expo-router';
import { useCallback, useState } from 'react';
import { StyleSheet, View } from 'react-native';

import { type Answer, answerCase, type Case, getCase, releaseCase } from '../../api/cases';
import { describeError, fieldErrors, isConflict } from '../../api/errors';
import { AiResult, AnswerCard, CaseImage, ContextCard, Heatmap, QualityCard, TriageCard } from '../../components/CaseParts';
import { LesionChangeCard } from '../../components/LesionParts';
import { LESION_LABELS, MANAGEMENT_LABELS } from '../../components/format';
import { Banner, Button, Card, Choice, Screen, space, TextField } from '../../ui';

const DIAGNOSES = Object.keys(LESION_LABELS) as Answer['diagnosis'][];
const MANAGEMENTS = Object.keys(MANAGEMENT_LABELS) as Answer['management'][];

/** Review a claimed case (zoomable photo, AI result, context, quality) and answer it with If-Match. */
export default function Review() {
  const { id } = useLocalSearchParams<{ id: string }>();
  const router = useRouter();
  const [kase, setKase] = useState<Case | null>(null);
  const [etag, setEtag] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [conflict, setConflict] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [diagnosis, setDiagnosis] = useState<Answer['diagnosis'] | null>(null);
  const [diagnosisText, setDiagnosisText] = useState('');
  const [management, setManagement] = useState<Answer['management'] | null>(null);
  const [weeks, setWeeks] = useState('');
  const [note, setNote] = useState('');

  const load = useCallback(async () => {
    try {
      const { case: c, etag: tag } = await getCase(id);
      setKase(c);
      setEtag(tag);
      setError(null);
    } catch (e) {
      setError(describeError(e));
    }
  }, [id]);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const submit = async () => {
    if (!diagnosis || !management) return;
    setBusy(true);
    setError(null);
    setConflict(null);
    setFields({});
    try {
      const answered = await answerCase(
        id,
        {
          diagnosis,
          diagnosis_text: diagnosis === 'other' ? diagnosisText.trim() : null,
          management,
          follow_up_weeks: weeks.trim() ? Number(weeks) : null,
          note: note.trim() || null,
        },
        etag,
      );
      setKase(answered);
    } catch (e) {
      if (isConflict(e)) {
        setConflict(describeError(e));
        await load();
      } else {
        setError(describeError(e));
        setFields(fieldErrors(e));
      }
    } finally {
      setBusy(false);
    }
  };

  const release = async () => {
    setBusy(true);
    try {
      await releaseCase(id);
      router.replace('/dermatologist');
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const open = kase?.state === 'awaiting_specialist';
  const ready = !!diagnosis && !!management && (diagnosis !== 'other' || diagnosisText.trim()) && (management !== 'monitor' || weeks.trim());

  return (
    <Screen title="Review case" loading={!kase && !error} testID="review-screen" wide>
      {conflict ? <Banner tone="warning" title="This case changed" message={conflict} testID="review-conflict" /> : null}
      {error ? <Banner tone="danger" message={error} testID="review-error" /> : null}
      {kase ? (
        <View style={styles.columns}>
          <View style={styles.column}>
            <Card title="Photos">
              {kase.images.map((img) => (
                <View key={img.id}>
                  <CaseImage caseId={kase.id} imageId={img.id} zoomable />
                  <Heatmap kase={kase} imageId={img.id} />
                </View>
              ))}
            </Card>
            <QualityCard kase={kase} />
            <ContextCard kase={kase} />
          </View>
          <View style={styles.column}>
            <TriageCard kase={kase} />
            <LesionChangeCard kase={kase} />
            <AiResult kase={kase} />
            {open ? (
              <Card title="Your answer" testID="answer-form">
                <Choice label="Diagnosis" options={DIAGNOSES.map((d) => ({ value: d, label: LESION_LABELS[d] }))} value={diagnosis} onChange={setDiagnosis} testID="answer-diagnosis" />
                {diagnosis === 'other' ? (
                  <TextField label="Diagnosis (free text)" value={diagnosisText} onChangeText={setDiagnosisText} testID="answer-diagnosis-text" error={fields.diagnosis_text} />
                ) : null}
                <Choice label="Management" options={MANAGEMENTS.map((m) => ({ value: m, label: MANAGEMENT_LABELS[m] }))} value={management} onChange={setManagement} testID="answer-management" />
                {management === 'monitor' ? (
                  <TextField label="Review again in (weeks)" value={weeks} onChangeText={setWeeks} keyboardType="number-pad" testID="answer-weeks" error={fields.follow_up_weeks} />
                ) : null}
                <TextField label="Note to the clinician (optional)" value={note} onChangeText={setNote} multiline testID="answer-note" error={fields.note} />
                <View style={styles.row}>
                  <Button title="Send answer" onPress={submit} busy={busy} disabled={!ready} testID="answer-submit" />
                  <Button variant="secondary" title="Release to queue" onPress={release} disabled={busy} testID="release" />
                </View>
              </Card>
            ) : (
              <>
                <AnswerCard kase={kase} />
                <Button variant="secondary" title="Back to the queue" onPress={() => router.replace('/dermatologist')} testID="back-to-queue" />
              </>
            )}
          </View>
        </View>
      ) : null}
    </Screen>
  );
}

const styles = StyleSheet.create({
  columns: { flexDirection: 'row', flexWrap: 'wrap', gap: space.lg },
  column: { flexGrow: 1, flexBasis: 340, minWidth: 0 },
  row: { flexDirection: 'row', flexWrap: 'wrap', gap: space.sm },
});
