import { useFocusEffect, useLocalSearchParams, useRouter } from 'expo-router';
import { useCallback, useState } from 'react';
import { Pressable, StyleSheet, Text, View } from 'react-native';

import { type CaseSummary, listCases } from '../../api/cases';
import { describeError } from '../../api/errors';
import { formatDate, STATE_LABELS, TRIAGE_LABELS, triageTone } from '../../components/format';
import { OutboxBanner } from '../../components/OutboxBanner';
import { Badge, Banner, Button, Card, colors, font, Muted, Screen, space } from '../../ui';

/** The clinician's cases, newest first, with their status; and what still waits in the outbox. */
export default function Cases() {
  const router = useRouter();
  const { queued } = useLocalSearchParams<{ queued?: string }>();
  const [items, setItems] = useState<CaseSummary[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const page = await listCases({ limit: 30 });
      setItems(page.items);
      setCursor(page.next_cursor ?? null);
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
      const page = await listCases({ limit: 30, cursor });
      setItems((prev) => [...(prev ?? []), ...page.items]);
      setCursor(page.next_cursor ?? null);
    } catch (e) {
      setError(describeError(e));
    }
  };

  return (
    <Screen title="My cases" loading={items === null && !error} onRefresh={load} testID="cases-screen">
      {queued ? (
        <Banner
          tone="info"
          testID="case-queued"
          title="Case saved on this device"
          message={
            queued === 'signed_out'
              ? 'Your session had ended. The case will be sent as soon as you are signed in again.'
              : 'There is no connection right now. The case will be sent automatically when the connection returns.'
          }
        />
      ) : null}
      <OutboxBanner />
      {error ? <Banner tone="danger" message={error} /> : null}
      <Card title="Submitted cases">
        {items && !items.length ? <Muted>No cases yet. Open a patient to start one.</Muted> : null}
        {items?.map((c) => (
          <Pressable
            key={c.id}
            accessibilityRole="button"
            accessibilityLabel={`Open case from ${formatDate(c.created_at)}`}
            onPress={() => router.push(`/clinician/cases/${c.id}`)}
            style={({ pressed }) => [styles.row, pressed && styles.pressed]}
            testID={`case-${c.id}`}
          >
            <View style={styles.rowText}>
              <Text style={styles.title}>{formatDate(c.created_at)}</Text>
              <Text style={styles.meta}>{STATE_LABELS[c.state] ?? c.state}</Text>
            </View>
            {c.triage_level ? <Badge label={TRIAGE_LABELS[c.triage_level] ?? c.triage_level} tone={triageTone(c.triage_level)} /> : null}
          </Pressable>
        ))}
        {cursor ? <Button variant="ghost" title="Show older cases" onPress={more} testID="cases-more" /> : null}
      </Card>
      <Button variant="secondary" title="Back to patients" onPress={() => router.navigate('/clinician')} />
    </Screen>
  );
}

const styles = StyleSheet.create({
  row: { flexDirection: 'row', alignItems: 'center', paddingVertical: space.md, borderTopWidth: 1, borderTopColor: colors.border, gap: space.md },
  pressed: { backgroundColor: colors.background },
  rowText: { flex: 1 },
  title: { fontSize: font.body, fontWeight: '600', color: colors.text },
  meta: { fontSize: font.small, color: colors.muted },
});
