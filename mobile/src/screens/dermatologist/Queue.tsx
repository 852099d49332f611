import { useFocusEffect, useRouter } from 'expo-router';
import { useCallback, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { type CaseSummary, claimCase, listCases, listQueue, type QueueItem } from '../../api/cases';
import { describeError, isConflict } from '../../api/errors';
import { formatDate, LESION_LABELS, percent, RULE_LABELS, TRIAGE_LABELS, triageTone } from '../../components/format';
import { Badge, Banner, Button, Card, colors, font, Muted, Screen, space } from '../../ui';

/** The consultation queue, in the order the API gives it (most urgent, then longest waiting). */
export default function Queue() {
  const router = useRouter();
  const [items, setItems] = useState<QueueItem[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [mine, setMine] = useState<CaseSummary[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [claiming, setClaiming] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const [page, claimed] = await Promise.all([listQueue(), listCases({ state: 'awaiting_specialist', limit: 50 })]);
      setItems(page.items);
      setCursor(page.next_cursor ?? null);
      setMine(claimed.items);
      setError(null);
    } catch (e) {
      setError(describeError(e));
    }
  }, []);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const more = async () => {
    try {
      const page = await listQueue(cursor);
      setItems((prev) => [...(prev ?? []), ...page.items]);
      setCursor(page.next_cursor ?? null);
    } catch (e) {
      setError(describeError(e));
    }
  };

  const claim = async (caseId: string) => {
    setClaiming(caseId);
    setError(null);
    try {
      await claimCase(caseId);
      router.push(`/dermatologist/cases/${caseId}`);
    } catch (e) {
      await load();
      setError(isConflict(e) ? 'Another dermatologist has just claimed this case. The queue has been refreshed.' : describeError(e));
    } finally {
      setClaiming(null);
    }
  };

  return (
    <Screen title="Consultation queue" subtitle="Most urgent first, then longest waiting. Claim a case to review and answer it." loading={items === null && !error} onRefresh={load} testID="queue-screen" wide>
      {error ? <Banner tone="danger" message={error} testID="queue-error" /> : null}
      {mine.length ? (
        <Card title="Claimed by you">
          {mine.map((c) => (
            <View key={c.id} style={styles.mineRow}>
              <Text style={styles.meta}>{`Submitted ${formatDate(c.created_at)}`}</Text>
              <Button compact variant="secondary" title="Continue review" onPress={() => router.push(`/dermatologist/cases/${c.id}`)} testID={`continue-${c.id}`} />
            </View>
          ))}
        </Card>
      ) : null}
      {items && !items.length ? <Banner tone="success" message="The queue is empty. Nothing is waiting for a dermatologist." /> : null}
      {items?.map((item, i) => (
        <Card
          key={item.case_id}
          testID={`queue-item-${i}`}
          title={`${item.age ?? '?'} y, ${item.sex ?? 'sex not stated'}, ${item.site ?? 'site not stated'}`}
          right={<Badge label={TRIAGE_LABELS[item.triage_level] ?? item.triage_level} tone={triageTone(item.triage_level)} />}
        >
          <Text style={styles.reason}>{item.triage_rule ? (RULE_LABELS[item.triage_rule] ?? item.triage_rule) : 'Waiting for review'}</Text>
          <Text style={styles.meta}>
            {`AI: ${item.ai_top_label ? `${LESION_LABELS[item.ai_top_label] ?? item.ai_top_label} (${percent(item.ai_top_probability)})` : 'no result'} · concern ${item.concern} · ${item.image_count} photo${item.image_count === 1 ? '' : 's'}`}
          </Text>
          <Muted>{`Waiting since ${formatDate(item.waiting_since)}`}</Muted>
          <View style={styles.actions}>
            <Button title="Claim and review" onPress={() => claim(item.case_id)} busy={claiming === item.case_id} testID={`claim-${item.case_id}`} />
          </View>
        </Card>
      ))}
      {cursor ? <Button variant="ghost" title="Show more" onPress={more} testID="queue-more" /> : null}
    </Screen>
  );
}

const styles = StyleSheet.create({
  reason: { fontSize: font.body, color: colors.text, fontWeight: '600' },
  meta: { fontSize: font.small, color: colors.muted },
  actions: { flexDirection: 'row', marginTop: space.sm },
  mineRow: { flexDirection: 'row', alignItems: 'center', justifyContent: 'space-between', paddingVertical: space.xs },
});
