/** Pieces of a case that the clinician's result screen and the dermatologist's review share. */
import { useEffect, useState } from 'react';
import { ActivityIndicator, Image, ScrollView, StyleSheet, Text, View } from 'react-native';

import { type Case, heatmapDataUri, imageDataUri } from '../api/cases';
import { Badge, Button, Card, colors, Field, font, Muted, radius, space } from '../ui';
import { formatDate, LESION_LABELS, MANAGEMENT_LABELS, percent, RULE_LABELS, STATE_LABELS, TRIAGE_LABELS, triageTone } from './format';

/** A case photo fetched with the session's token; `zoomable` adds zoom controls and panning. */
export function CaseImage({ caseId, imageId, zoomable }: { caseId: string; imageId: string; zoomable?: boolean }) {
  const [uri, setUri] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  const [zoom, setZoom] = useState(1);
  useEffect(() => {
    let alive = true;
    imageDataUri(caseId, imageId).then(
      (u) => alive && setUri(u),
      () => alive && setFailed(true),
    );
    return () => {
      alive = false;
    };
  }, [caseId, imageId]);
  if (failed) return <Muted>The photo could not be loaded.</Muted>;
  if (!uri) return <ActivityIndicator color={colors.primary} accessibilityLabel="Loading photo" />;
  const width = 360 * zoom;
  return (
    <View style={styles.imageWrap}>
      <ScrollView horizontal style={styles.imageScroll} contentContainerStyle={{ width }}>
        <ScrollView style={{ maxHeight: 300 }} contentContainerStyle={{ height: 270 * zoom }} nestedScrollEnabled>
          <Image source={{ uri }} style={{ width, height: 270 * zoom, borderRadius: radius.md }} resizeMode="contain" accessibilityLabel="Lesion photo" testID="case-photo" />
        </ScrollView>
      </ScrollView>
      {zoomable ? (
        <View style={styles.zoomRow}>
          <Button compact variant="secondary" title="Zoom out" onPress={() => setZoom((z) => Math.max(1, z / 1.5))} disabled={zoom <= 1} testID="zoom-out" />
          <Text style={styles.zoomText}>{`${Math.round(zoom * 100)}%`}</Text>
          <Button compact variant="secondary" title="Zoom in" onPress={() => setZoom((z) => Math.min(5, z * 1.5))} disabled={zoom >= 5} testID="zoom-in" />
        </View>
      ) : null}
    </View>
  );
}

export const HEATMAP_LABEL = 'Where the model looked, not a diagnosis';

/** The image's heatmap (the top class's activation map over the photo) behind a toggle, always with its
 * label; nothing when the analysis has none for this image. */
export function Heatmap({ kase, imageId }: { kase: Case; imageId: string }) {
  const hasHeatmap = Boolean(kase.analysis.results.find((r) => r.image_id === imageId)?.heatmap_url);
  const [shown, setShown] = useState(false);
  const [uri, setUri] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!shown || uri || !hasHeatmap) return;
    let alive = true;
    heatmapDataUri(kase.id, imageId).then(
      (u) => alive && setUri(u),
      () => alive && setFailed(true),
    );
    return () => {
      alive = false;
    };
  }, [shown, uri, hasHeatmap, kase.id, imageId]);
  if (!hasHeatmap) return null;
  const label = kase.analysis.heatmap_label ?? HEATMAP_LABEL;
  return (
    <View style={styles.heatmap} testID="heatmap">
      <Button compact variant="secondary" title={shown ? 'Hide heatmap' : 'Show heatmap'} onPress={() => setShown((s) => !s)} testID="heatmap-toggle" />
      <Text style={styles.heatmapLabel} testID="heatmap-label">
        {label}
      </Text>
      {!shown ? null : failed ? (
        <Muted>The heatmap could not be loaded.</Muted>
      ) : !uri ? (
        <ActivityIndicator color={colors.primary} accessibilityLabel="Loading heatmap" />
      ) : (
        <Image source={{ uri }} style={styles.heatmapImage} resizeMode="contain" accessibilityLabel={label} testID="heatmap-image" />
      )}
    </View>
  );
}

function Bar({ label, value, highlight }: { label: string; value: number; highlight: boolean }) {
  return (
    <View style={styles.barRow} accessibilityLabel={`${label}: ${percent(value)}`}>
      <Text style={[styles.barLabel, highlight && styles.bold]} numberOfLines={1}>
        {label}
      </Text>
      <View style={styles.barTrack}>
        <View style={[styles.barFill, { width: `${Math.max(1, value * 100)}%` }, highlight && styles.barHighlight]} />
      </View>
      <Text style={[styles.barValue, highlight && styles.bold]}>{percent(value)}</Text>
    </View>
  );
}

export function AiResult({ kase }: { kase: Case }) {
  const { analysis } = kase;
  const pending = analysis.status === 'pending' || analysis.status === 'running';
  return (
    <Card title="AI result" testID="ai-result">
      {pending ? (
        <View style={styles.pending}>
          <ActivityIndicator color={colors.primary} />
          <Muted>The photos are being analysed. This usually takes a few seconds.</Muted>
        </View>
      ) : null}
      {analysis.status === 'failed' ? <Muted>The AI analysis failed; the case goes to a dermatologist.</Muted> : null}
      {analysis.results.map((r, i) => {
        const entries = Object.entries(r.probabilities).sort((a, b) => b[1] - a[1]);
        return (
          <View key={r.image_id} style={styles.result} testID={`ai-result-${i}`}>
            {analysis.results.length > 1 ? <Text style={styles.bold}>{`Photo ${i + 1}`}</Text> : null}
            <Text style={styles.top} testID="ai-top-label">
              {`Most likely: ${LESION_LABELS[r.top_label] ?? r.top_label} (${percent(r.top_probability)})`}
            </Text>
            {entries.map(([label, p]) => (
              <Bar key={label} label={LESION_LABELS[label] ?? label} value={p} highlight={label === r.top_label} />
            ))}
            <Field label="Malignant classes" value={percent(r.malignant_probability)} />
            <Field label="Model" value={`${r.model_name} version ${r.model_version}`} testID="ai-model" />
          </View>
        );
      })}
      <View style={styles.disclaimer} testID="ai-disclaimer">
        <Text style={styles.disclaimerText}>{analysis.disclaimer}</Text>
      </View>
    </Card>
  );
}

export function TriageCard({ kase }: { kase: Case }) {
  const { triage } = kase;
  return (
    <Card title="Triage" right={triage.level ? <Badge label={TRIAGE_LABELS[triage.level] ?? triage.level} tone={triageTone(triage.level)} testID="triage-level" /> : null}>
      {triage.rule ? (
        <Text style={styles.body} testID="triage-rule">
          {RULE_LABELS[triage.rule] ?? triage.rule}
        </Text>
      ) : (
        <Muted>Triage follows once the AI result is ready.</Muted>
      )}
      {triage.sharing_consent_missing ? (
        <Text style={[styles.body, { color: colors.warning }]}>
          The patient has not consented to sharing with a dermatologist, so this case cannot go to the specialist queue.
        </Text>
      ) : null}
      {triage.message ? <Muted>{triage.message}</Muted> : null}
    </Card>
  );
}

export function ContextCard({ kase }: { kase: Case }) {
  const history = Object.entries(kase.history ?? {})
    .filter(([, v]) => v === true)
    .map(([k]) => k)
    .join(', ');
  return (
    <Card title="Clinical context">
      <Field label="Age" value={kase.age} />
      <Field label="Sex" value={kase.sex} />
      <Field label="Body site" value={kase.site} />
      <Field label="History" value={history || 'nothing reported'} />
      <Field label="Clinician's concern" value={kase.concern} />
      <Field label="Specialist requested" value={kase.wants_specialist ? 'yes' : 'no'} />
      <Field label="Notes" value={kase.notes} />
      <Field label="Submitted" value={formatDate(kase.created_at)} />
      <Field label="Status" value={STATE_LABELS[kase.state] ?? kase.state} testID="case-state" />
    </Card>
  );
}

export function QualityCard({ kase }: { kase: Case }) {
  const poor = kase.images.filter((i) => !i.quality_ok);
  if (!poor.length) return null;
  return (
    <Card title="Photo quality warnings" testID="quality-warnings">
      {poor.map((img) => {
        const reasons = (img.quality as { reasons?: string[] }).reasons ?? [];
        return <Muted key={img.id}>{`${img.width}×${img.height}: ${reasons.join('; ') || 'did not pass the quality check'}`}</Muted>;
      })}
    </Card>
  );
}

export function AnswerCard({ kase }: { kase: Case }) {
  const a = kase.answer;
  return (
    <Card title="Dermatologist's answer" testID="answer-card">
      {a ? (
        <>
          <Field label="Diagnosis" value={a.diagnosis === 'other' ? a.diagnosis_text : (LESION_LABELS[a.diagnosis] ?? a.diagnosis)} testID="answer-diagnosis" />
          <Field label="Management" value={MANAGEMENT_LABELS[a.management] ?? a.management} testID="answer-management" />
          <Field label="Follow-up" value={a.follow_up_weeks ? `in ${a.follow_up_weeks} weeks` : null} />
          <Field label="Note" value={a.note} testID="answer-note" />
          <Field label="Answered" value={formatDate(a.created_at)} />
        </>
      ) : (
        <Muted>
          {kase.state === 'awaiting_specialist' ? 'Waiting for a dermatologist. This screen updates by itself.' : 'No dermatologist review was requested for this case.'}
        </Muted>
      )}
    </Card>
  );
}

const styles = StyleSheet.create({
  imageWrap: { gap: space.sm },
  imageScroll: { maxWidth: '100%', borderRadius: radius.md, backgroundColor: colors.border },
  zoomRow: { flexDirection: 'row', alignItems: 'center', gap: space.sm },
  zoomText: { fontSize: font.small, color: colors.muted, minWidth: 44, textAlign: 'center' },
  heatmap: { gap: space.xs, marginTop: space.xs, marginBottom: space.sm, alignItems: 'flex-start' },
  heatmapLabel: { fontSize: font.small, color: colors.muted, fontStyle: 'italic' },
  heatmapImage: { width: 224, height: 224, borderRadius: radius.md },
  pending: { flexDirection: 'row', gap: space.sm, alignItems: 'center' },
  result: { gap: space.xs, marginBottom: space.sm },
  top: { fontSize: font.large, fontWeight: '700', color: colors.text, marginBottom: space.xs },
  barRow: { flexDirection: 'row', alignItems: 'center', gap: space.sm },
  barLabel: { width: 150, fontSize: font.small, color: colors.text },
  barTrack: { flex: 1, height: 10, backgroundColor: colors.background, borderRadius: 5, overflow: 'hidden' },
  barFill: { height: 10, backgroundColor: colors.subtle, borderRadius: 5 },
  barHighlight: { backgroundColor: colors.primary },
  barValue: { width: 48, textAlign: 'right', fontSize: font.small, color: colors.text },
  bold: { fontWeight: '700' },
  body: { fontSize: font.body, color: colors.text, lineHeight: 21 },
  disclaimer: { backgroundColor: colors.infoSoft, borderRadius: radius.sm, padding: space.md, marginTop: space.sm },
  disclaimerText: { fontSize: font.small, color: colors.text, lineHeight: 19 },
});
