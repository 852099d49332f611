import { useFocusEffect, useLocalSearchParams, useRouter } from 'expo-router';
import { useCallback, useRef, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import type { Schemas } from '../../api/client-types';
import {
  type ConsentDocument,
  type ConsentStatus,
  currentConsentDocument,
  getConsent,
  recordConsent,
  SCOPE_LABELS,
  type Scope,
  withdrawConsent,
} from '../../api/consent';
import { describeError } from '../../api/errors';
import { formatDate } from '../../components/format';
import { SignaturePad, strokesToPng } from '../../components/SignaturePad';
import { Banner, Button, Card, Choice, colors, font, Muted, Screen, space, TextField } from '../../ui';

type Method = Schemas['Method'];

/** Record consent (drawn signature, or verbal with a named witness), see what is active, withdraw a scope. */
export default function Consent() {
  const { id } = useLocalSearchParams<{ id: string }>();
  const router = useRouter();
  const [document, setDocument] = useState<ConsentDocument | null | undefined>(undefined);
  const [status, setStatus] = useState<ConsentStatus | null>(null);
  const [scopes, setScopes] = useState<Scope[]>([]);
  const [method, setMethod] = useState<Method>('signed');
  const [witness, setWitness] = useState('');
  const [strokes, setStrokes] = useState<[number, number][][]>([]);
  const svgRef = useRef<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [withdrawing, setWithdrawing] = useState<Scope | null>(null);
  const [reason, setReason] = useState('');

  const load = useCallback(async () => {
    try {
      const [doc, st] = await Promise.all([currentConsentDocument(), getConsent(id)]);
      setDocument(doc);
      setStatus(st);
      setScopes((doc?.scopes ?? []) as Scope[]);
    } catch (e) {
      setError(describeError(e));
    }
  }, [id]);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const toggle = (scope: Scope) => setScopes((s) => (s.includes(scope) ? s.filter((x) => x !== scope) : [...s, scope]));

  const record = async () => {
    if (!document) return;
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const signature = method === 'signed' ? await strokesToPng(strokes, svgRef.current as never) : null;
      const st = await recordConsent(id, {
        document_id: document.id,
        scopes,
        method,
        witness_name: method === 'verbal' ? witness.trim() : null,
        signature_png_base64: signature,
      });
      setStatus(st);
      setNotice('Consent recorded.');
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const withdraw = async (scope: Scope) => {
    setBusy(true);
    setError(null);
    try {
      setStatus(await withdrawConsent(id, [scope], reason.trim()));
      setNotice(`Consent withdrawn: ${SCOPE_LABELS[scope]}.`);
      setWithdrawing(null);
      setReason('');
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const ready = scopes.length > 0 && (method === 'signed' ? strokes.length > 0 : witness.trim().length > 1);
  const active = status?.scopes.filter((s) => s.active) ?? [];

  return (
    <Screen title="Consent" loading={document === undefined && !error} testID="consent-screen">
      {error ? <Banner tone="danger" message={error} testID="consent-error" /> : null}
      {notice ? <Banner tone="success" message={notice} testID="consent-notice" /> : null}
      {status ? (
        <Card title="Active consent">
          {active.length ? (
            active.map((s) => (
              <View key={s.scope} style={styles.scopeRow} testID={`active-${s.scope}`}>
                <View style={styles.scopeText}>
                  <Text style={styles.scopeName}>{SCOPE_LABELS[s.scope]}</Text>
                  <Muted>{`Version ${s.document_version ?? '?'}${s.needs_reconsent ? ' · needs renewal' : ''}`}</Muted>
                </View>
                {withdrawing === s.scope ? null : (
                  <Button compact variant="ghost" title="Withdraw" onPress={() => setWithdrawing(s.scope)} testID={`withdraw-${s.scope}`} />
                )}
              </View>
            ))
          ) : (
            <Muted>No consent is active for this patient.</Muted>
          )}
          {withdrawing ? (
            <View style={styles.confirm}>
              <Banner tone="warning" message={`Withdraw "${SCOPE_LABELS[withdrawing]}"? New cases will no longer use it.`} />
              <TextField label="Reason (optional)" value={reason} onChangeText={setReason} testID="withdraw-reason" />
              <View style={styles.row}>
                <Button variant="danger" title="Confirm withdrawal" onPress={() => withdraw(withdrawing)} busy={busy} testID="withdraw-confirm" />
                <Button variant="ghost" title="Cancel" onPress={() => setWithdrawing(null)} />
              </View>
            </View>
          ) : null}
        </Card>
      ) : null}
      {document === null ? (
        <Banner tone="warning" message="No consent document is published yet. Ask an administrator to publish one." />
      ) : null}
      {document ? (
        <Card title={document.title}>
          <Muted>{`Version ${document.version} · ${document.language} · published ${formatDate(document.published_at)}`}</Muted>
          <Text style={styles.docText} testID="consent-text">
            {document.text}
          </Text>
          <Choice
            label="The patient agrees to"
            options={(document.scopes as Scope[]).map((s) => ({ value: s, label: SCOPE_LABELS[s] }))}
            value={scopes}
            onChange={toggle}
            testID="consent-scopes"
          />
          <Choice
            label="How consent is given"
            options={[
              { value: 'signed', label: 'Signature on screen' },
              { value: 'verbal', label: 'Verbal, with a witness' },
            ]}
            value={method}
            onChange={setMethod}
            testID="consent-method"
          />
          {method === 'signed' ? (
            <SignaturePad onChange={setStrokes} svgRef={svgRef} />
          ) : (
            <TextField label="Witness's full name" value={witness} onChangeText={setWitness} testID="consent-witness" />
          )}
          <Button title="Record consent" onPress={record} busy={busy} disabled={!ready} testID="consent-submit" />
        </Card>
      ) : null}
      <Button variant="ghost" title="Back to patient" onPress={() => router.back()} />
    </Screen>
  );
}

const styles = StyleSheet.create({
  scopeRow: { flexDirection: 'row', alignItems: 'center', justifyContent: 'space-between', paddingVertical: space.xs },
  scopeText: { flex: 1 },
  scopeName: { fontSize: font.body, fontWeight: '600', color: colors.text },
  confirm: { marginTop: space.sm },
  row: { flexDirection: 'row', gap: space.sm },
  docText: {
    fontSize: font.body,
    lineHeight: 22,
    color: colors.text,
    backgroundColor: colors.background,
    padding: space.md,
    borderRadius: 8,
    marginVertical: space.sm,
  },
});
