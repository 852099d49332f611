import { useFocusEffect } from 'expo-router';
import { useCallback, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { type AuditEvent, type AuditFilters, exportAuditCsv, searchAudit } from '../../api/admin';
import { describeError } from '../../api/errors';
import { formatDate } from '../../components/format';
import { saveTextFile } from '../../components/saveText';
import { Badge, Banner, Button, Card, Choice, colors, font, Muted, Screen, space, TextField } from '../../ui';

const PAGE = 25;
type Outcome = '' | 'allowed' | 'denied' | 'failed';

function toIso(day: string, endOfDay: boolean): string | undefined {
  const d = day.trim();
  if (!d) return undefined;
  return /^\d{4}-\d{2}-\d{2}$/.test(d) ? `${d}T${endOfDay ? '23:59:59' : '00:00:00'}Z` : d;
}

/** Search the audit trail by person, patient, action, outcome and time; page through it; export CSV. */
export default function Audit() {
  const [actor, setActor] = useState('');
  const [patient, setPatient] = useState('');
  const [action, setAction] = useState('');
  const [outcome, setOutcome] = useState<Outcome>('');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [next, setNext] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const filters = useCallback(
    (): AuditFilters => ({
      actor_id: actor.trim() || undefined,
      patient_id: patient.trim() || undefined,
      action: action.trim() || undefined,
      outcome: outcome || undefined,
      since: toIso(since, false),
      until: toIso(until, true),
    }),
    [actor, patient, action, outcome, since, until],
  );

  const load = useCallback(
    async (applied: AuditFilters, cursor: string | null, stack: (string | null)[]) => {
      setBusy(true);
      setError(null);
      try {
        const page = await searchAudit(applied, cursor, PAGE);
        setEvents(page.items);
        setNext(page.next_cursor ?? null);
        setCursors(stack);
      } catch (e) {
        setError(describeError(e));
      } finally {
        setBusy(false);
      }
    },
    [],
  );

  useFocusEffect(
    useCallback(() => {
      load({}, null, [null]);
    }, [load]),
  );

  const exportCsv = async () => {
    setNotice(null);
    setError(null);
    try {
      const csv = await exportAuditCsv(filters());
      const rows = Math.max(0, csv.trim().split('\n').length - 1);
      await saveTextFile(`dermalink-audit-${new Date().toISOString().slice(0, 10)}.csv`, csv, 'text/csv');
      setNotice(`Exported ${rows} event${rows === 1 ? '' : 's'} as CSV.`);
    } catch (e) {
      setError(describeError(e));
    }
  };

  const page = cursors.length;
  return (
    <Screen title="Audit trail" subtitle="Every access to patient data, sign-in and administrative action." testID="audit-screen" wide>
      <Card title="Filters">
        <View style={styles.grid}>
          <View style={styles.cell}>
            <TextField label="Patient ID" value={patient} onChangeText={setPatient} autoCapitalize="none" testID="audit-patient" />
          </View>
          <View style={styles.cell}>
            <TextField label="Person (user ID)" value={actor} onChangeText={setActor} autoCapitalize="none" testID="audit-actor" />
          </View>
          <View style={styles.cell}>
            <TextField label="Action" hint="e.g. case.create, patient.read" value={action} onChangeText={setAction} autoCapitalize="none" testID="audit-action" />
          </View>
          <View style={styles.cell}>
            <TextField label="From (YYYY-MM-DD)" value={since} onChangeText={setSince} testID="audit-since" />
          </View>
          <View style={styles.cell}>
            <TextField label="To (YYYY-MM-DD)" value={until} onChangeText={setUntil} testID="audit-until" />
          </View>
        </View>
        <Choice
          label="Outcome"
          options={[
            { value: '', label: 'Any' },
            { value: 'allowed', label: 'Allowed' },
            { value: 'denied', label: 'Denied' },
            { value: 'failed', label: 'Failed' },
          ]}
          value={outcome}
          onChange={setOutcome}
          testID="audit-outcome"
        />
        <View style={styles.row}>
          <Button title="Search" onPress={() => load(filters(), null, [null])} busy={busy} testID="audit-search" />
          <Button variant="secondary" title="Export CSV" onPress={exportCsv} testID="audit-export" />
        </View>
      </Card>
      {error ? <Banner tone="danger" message={error} /> : null}
      {notice ? <Banner tone="success" message={notice} testID="audit-notice" /> : null}
      <Card title={`Events · page ${page}`}>
        {events && !events.length ? <Muted>No events match these filters.</Muted> : null}
        {events?.map((e) => (
          <View key={e.id} style={styles.event} testID={`audit-event-${e.seq}`}>
            <View style={styles.eventHead}>
              <Text style={styles.action}>{e.action}</Text>
              <Badge label={e.outcome} tone={e.outcome === 'allowed' ? 'success' : e.outcome === 'denied' ? 'warning' : 'danger'} />
            </View>
            <Text style={styles.meta}>
              {`#${e.seq} · ${formatDate(e.occurred_at)} · ${e.actor_role ?? 'system'} ${e.actor_id ?? ''}`}
            </Text>
            {e.resource_type ? <Text style={styles.meta}>{`${e.resource_type} ${e.resource_id ?? ''}`}</Text> : null}
            {e.patient_id ? <Text style={styles.meta}>{`patient ${e.patient_id}`}</Text> : null}
            {e.reason ? <Text style={styles.reason}>{`Reason: ${e.reason}`}</Text> : null}
          </View>
        ))}
        <View style={styles.row}>
          <Button compact variant="secondary" title="Previous page" disabled={page <= 1 || busy} onPress={() => load(filters(), cursors[page - 2], cursors.slice(0, -1))} testID="audit-prev" />
          <Button compact variant="secondary" title="Next page" disabled={!next || busy} onPress={() => load(filters(), next, [...cursors, next])} testID="audit-next" />
        </View>
      </Card>
    </Screen>
  );
}

const styles = StyleSheet.create({
  grid: { flexDirection: 'row', flexWrap: 'wrap', columnGap: space.md },
  cell: { flexGrow: 1, flexBasis: 300 },
  row: { flexDirection: 'row', flexWrap: 'wrap', gap: space.sm },
  event: { borderTopWidth: 1, borderTopColor: colors.border, paddingVertical: space.sm, gap: 2 },
  eventHead: { flexDirection: 'row', justifyContent: 'space-between', alignItems: 'center', gap: space.sm },
  action: { fontSize: font.body, fontWeight: '700', color: colors.text, fontFamily: 'monospace' },
  meta: { fontSize: font.small, color: colors.muted },
  reason: { fontSize: font.small, color: colors.text },
});
