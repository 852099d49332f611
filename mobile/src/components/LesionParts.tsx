/** Lesion tracking pieces: the change since the last photo (result and review screens) and follow-ups due. */
import { useEffect, useState } from 'react';
import { ActivityIndicator, Image, Pressable, StyleSheet, Text, View } from 'react-native';

import type { Case } from '../api/cases';
import { changeImageDataUri, type DueLesion, type LesionChange } from '../api/lesions';
import { Badge, Card, colors, font, Muted, radius, space } from '../ui';

/** The measures the API may list in `significant`, in words a clinician reads. */
export const MEASURE_LABELS: Record<string, string> = {
  area_ratio: 'size (area)',
  diameter_change: 'largest diameter',
  irregularity_change: 'border irregularity',
  asymmetry_change: 'asymmetry',
  colour_delta_e: 'colour',
  colour_count_change: 'number of colours',
};

function num(measurements: Record<string, unknown>, key: string): number | null {
  const value = measurements[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function signedPercent(fraction: number): string {
  const p = Math.round(fraction * 100);
  return `${p > 0 ? '+' : ''}${p}%`;
}

/** The key measurements as sentences: area as % of before, diameter change %, colour difference ΔE. */
export function changeSentences(change: LesionChange): string[] {
  const m = change.measurements ?? {};
  const lines: string[] = [];
  const area = num(m, 'area_ratio');
  if (area !== null) {
    const moved = Math.round((area - 1) * 100);
    lines.push(
      moved === 0
        ? `Area: about the same as the last photo (${Math.round(area * 100)}%).`
        : `Area: ${Math.round(area * 100)}% of the last photo (${signedPercent(area - 1)}, ${moved > 0 ? 'larger' : 'smaller'}).`,
    );
  }
  const diameter = num(m, 'diameter_change');
  if (diameter !== null) {
    lines.push(Math.round(diameter * 100) === 0 ? 'Largest diameter: unchanged.' : `Largest diameter: ${signedPercent(diameter)}.`);
  }
  const delta = num(m, 'colour_delta_e');
  if (delta !== null) {
    const seen = delta < 3 ? 'hardly visible' : delta < 8 ? 'a visible but small difference' : 'a marked difference';
    lines.push(`Colour difference: ΔE ${delta.toFixed(1)} (${seen}).`);
  }
  return lines;
}

function significantList(change: LesionChange): string[] {
  const raw = (change.measurements ?? {}).significant;
  return Array.isArray(raw) ? raw.filter((s): s is string => typeof s === 'string').map((s) => MEASURE_LABELS[s] ?? s.replace(/_/g, ' ')) : [];
}

function SideBySide({ lesionId, caseId }: { lesionId: string; caseId: string }) {
  const [uri, setUri] = useState<string | null>(null);
  const [ratio, setRatio] = useState(3); // three panels side by side, until the image says otherwise
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let alive = true;
    changeImageDataUri(lesionId, caseId).then(
      (u) => {
        if (!alive) return;
        setUri(u);
        try {
          Image.getSize(u, (w, h) => alive && h > 0 && setRatio(w / h), () => undefined);
        } catch {
          // no image loader (tests): keep the three-panel ratio
        }
      },
      () => alive && setFailed(true),
    );
    return () => {
      alive = false;
    };
  }, [lesionId, caseId]);
  if (failed) return <Muted>The aligned photos could not be loaded.</Muted>;
  if (!uri) return <ActivityIndicator color={colors.primary} accessibilityLabel="Loading the aligned photos" />;
  return (
    <View>
      <Image
        source={{ uri }}
        style={[styles.pair, { aspectRatio: ratio }]}
        resizeMode="contain"
        accessibilityLabel="The last photo, this photo aligned to it, and their difference, side by side"
        testID="change-image"
      />
      <Text style={styles.caption}>
        Left: the last photo. Middle: this photo, aligned to it. Right: the difference (growth in orange, shrinking in blue, the last outline in white).
      </Text>
    </View>
  );
}

/** The API's reason, without the figures some reasons carry in brackets (no number for a pair not compared). */
function plainReason(reason: string | null | undefined): string {
  const text = (reason ?? '').replace(/\s*\([^)]*\)/g, '').replace(/[.\s]+$/, '').trim();
  return text || 'no reason was given';
}

/** "Change since the last photo": the measurements in words, or why no comparison was possible. */
export function LesionChangeCard({ kase }: { kase: Case }) {
  const change = kase.lesion_change;
  if (!change) return null;
  if (change.status !== 'measured') {
    return (
      <Card title="Change since the last photo" testID="lesion-change" right={<Badge label="Not compared" tone="neutral" testID="lesion-change-status" />}>
        <Text style={styles.body} testID="lesion-change-reason">
          {`The two photos could not be compared: ${plainReason(change.reason)}. Compare them by eye, or retake the photo in the same way as the last one.`}
        </Text>
      </Card>
    );
  }
  const significant = significantList(change);
  return (
    <Card
      title="Change since the last photo"
      testID="lesion-change"
      right={<Badge label={significant.length ? 'Significant change' : 'No significant change'} tone={significant.length ? 'warning' : 'success'} testID="lesion-change-status" />}
    >
      {changeSentences(change).map((line) => (
        <Text key={line} style={styles.body} testID="lesion-change-measure">
          {line}
        </Text>
      ))}
      <Text style={[styles.body, styles.bold]} testID="lesion-change-significant">
        {significant.length ? `Changed by more than the set amount: ${significant.join(', ')}.` : 'No measure changed by more than the set amount.'}
      </Text>
      <SideBySide lesionId={change.lesion_id} caseId={change.followup_case_id} />
      <View style={styles.disclaimer} testID="lesion-change-disclaimer">
        <Text style={styles.disclaimerText}>{change.disclaimer}</Text>
      </View>
    </Card>
  );
}

export function dueWords(overdueDays: number): string {
  if (overdueDays > 0) return `${overdueDays} day${overdueDays === 1 ? '' : 's'} overdue`;
  if (overdueDays === 0) return 'due today';
  const days = -overdueDays;
  return `due in ${days} day${days === 1 ? '' : 's'}`;
}

/** "Follow-ups due": one row per lesion, opening its patient. */
export function FollowUpsDue({ lesions, onOpen }: { lesions: DueLesion[]; onOpen: (lesion: DueLesion) => void }) {
  return (
    <Card title="Follow-ups due" testID="due-list">
      {!lesions.length ? <Muted>No follow-up photo is due in the next two weeks.</Muted> : null}
      {lesions.map((lesion) => {
        const where = [lesion.site[0].toUpperCase() + lesion.site.slice(1), lesion.label].filter(Boolean).join(', ');
        return (
          <Pressable
            key={lesion.id}
            accessibilityRole="button"
            accessibilityLabel={`Open the patient of the lesion on the ${where}`}
            onPress={() => onOpen(lesion)}
            style={({ pressed }) => [styles.row, pressed && styles.pressed]}
            testID={`due-${lesion.id}`}
          >
            <Text style={styles.name}>{where}</Text>
            <Badge label={dueWords(lesion.overdue_days)} tone={lesion.overdue_days > 0 ? 'danger' : 'warning'} />
          </Pressable>
        );
      })}
    </Card>
  );
}

const styles = StyleSheet.create({
  body: { fontSize: font.body, color: colors.text, lineHeight: 21 },
  bold: { fontWeight: '700', marginTop: space.xs },
  pair: { width: '100%', borderRadius: radius.md, backgroundColor: colors.border, marginTop: space.sm },
  caption: { fontSize: font.small, color: colors.muted, marginTop: space.xs },
  disclaimer: { backgroundColor: colors.infoSoft, borderRadius: radius.sm, padding: space.md, marginTop: space.sm },
  disclaimerText: { fontSize: font.small, color: colors.text, lineHeight: 19 },
  row: { flexDirection: 'row', justifyContent: 'space-between', alignItems: 'center', gap: space.sm, paddingVertical: space.md, borderTopWidth: 1, borderTopColor: colors.border },
  pressed: { backgroundColor: colors.background },
  name: { flex: 1, fontSize: font.body, fontWeight: '600', color: colors.text },
});
