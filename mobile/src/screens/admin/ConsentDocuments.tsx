import { useFocusEffect } from 'expo-router';
import { useCallback, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { type ConsentDocument, listConsentDocuments, publishConsentDocument, SCOPE_LABELS, type Scope } from '../../api/consent';
import { describeError, fieldErrors } from '../../api/errors';
import { formatDate } from '../../components/format';
import { Badge, Banner, Button, Card, Choice, colors, font, Muted, Screen, space, TextField } from '../../ui';

const ALL_SCOPES = Object.keys(SCOPE_LABELS) as Scope[];

/** Publish a new version of the consent text; earlier versions stay on record. */
export default function ConsentDocuments() {
  const [documents, setDocuments] = useState<ConsentDocument[] | null>(null);
  const [version, setVersion] = useState('');
  const [language, setLanguage] = useState('en');
  const [title, setTitle] = useState('');
  const [text, setText] = useState('');
  const [scopes, setScopes] = useState<Scope[]>(['ai_analysis', 'specialist_sharing']);
  const [reconsent, setReconsent] = useState<'no' | 'yes'>('no');
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});

  const load = useCallback(async () => {
    try {
      const docs = await listConsentDocuments();
      docs.sort((a, b) => Date.parse(b.published_at) - Date.parse(a.published_at));
      setDocuments(docs);
    } catch (e) {
      setError(describeError(e));
    }
  }, []);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const publish = async () => {
    setBusy(true);
    setError(null);
    setFields({});
    try {
      const doc = await publishConsentDocument({ version: version.trim(), language: language.trim(), title: title.trim(), text, scopes, requires_reconsent: reconsent === 'yes' });
      setNotice(`Version ${doc.version} is published. New consents use it from now on.`);
      setConfirming(false);
      setVersion('');
      setTitle('');
      setText('');
      await load();
    } catch (e) {
      setError(describeError(e));
      setFields(fieldErrors(e));
      setConfirming(false);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Screen title="Consent documents" loading={documents === null && !error} testID="consent-documents-screen" wide>
      {error ? <Banner tone="danger" message={error} /> : null}
      {notice ? <Banner tone="success" message={notice} testID="consent-documents-notice" /> : null}
      <Card title="Publish a new version">
        <View style={styles.grid}>
          <View style={styles.cell}>
            <TextField label="Version" hint="Letters, digits, dots and dashes, e.g. 2.0" value={version} onChangeText={setVersion} testID="doc-version" error={fields.version} />
          </View>
          <View style={styles.cell}>
            <TextField label="Language" hint="e.g. en, fr, pt-BR" value={language} onChangeText={setLanguage} autoCapitalize="none" testID="doc-language" error={fields.language} />
          </View>
        </View>
        <TextField label="Title" value={title} onChangeText={setTitle} testID="doc-title" error={fields.title} />
        <TextField label="Text shown to the patient" value={text} onChangeText={setText} multiline testID="doc-text" error={fields.text} />
        <Choice
          label="Scopes this document asks for"
          options={ALL_SCOPES.map((s) => ({ value: s, label: SCOPE_LABELS[s] }))}
          value={scopes}
          onChange={(s) => setScopes((cur) => (cur.includes(s) ? cur.filter((x) => x !== s) : [...cur, s]))}
          testID="doc-scopes"
        />
        <Choice
          label="Patients who consented to an earlier version must consent again"
          options={[
            { value: 'no', label: 'No' },
            { value: 'yes', label: 'Yes' },
          ]}
          value={reconsent}
          onChange={setReconsent}
          testID="doc-reconsent"
        />
        {confirming ? (
          <View style={styles.confirm}>
            <Banner tone="warning" message={`Publish version ${version} now? A published text cannot be edited, only replaced by a newer version.`} />
            <View style={styles.row}>
              <Button title="Publish" onPress={publish} busy={busy} testID="doc-publish-confirm" />
              <Button variant="ghost" title="Cancel" onPress={() => setConfirming(false)} />
            </View>
          </View>
        ) : (
          <Button title="Publish…" onPress={() => setConfirming(true)} disabled={!version.trim() || !title.trim() || text.trim().length < 20 || !scopes.length} testID="doc-publish" />
        )}
      </Card>
      <Card title="Published versions">
        {documents && !documents.length ? <Muted>Nothing is published yet: clinicians cannot record consent until a document is published.</Muted> : null}
        {documents?.map((d) => (
          <View key={d.id} style={styles.doc} testID={`doc-${d.version}`}>
            <View style={styles.docHead}>
              <Text style={styles.name}>{`${d.title} · v${d.version} (${d.language})`}</Text>
              <Badge label={d.withdrawn_at ? 'Withdrawn' : 'Published'} tone={d.withdrawn_at ? 'neutral' : 'success'} />
            </View>
            <Text style={styles.meta}>{`${formatDate(d.published_at)} · ${d.scopes.map((s) => SCOPE_LABELS[s as Scope] ?? s).join(', ')}`}</Text>
          </View>
        ))}
      </Card>
    </Screen>
  );
}

const styles = StyleSheet.create({
  grid: { flexDirection: 'row', flexWrap: 'wrap', columnGap: space.md },
  cell: { flexGrow: 1, flexBasis: 220 },
  row: { flexDirection: 'row', gap: space.sm },
  confirm: { gap: space.xs },
  doc: { paddingVertical: space.sm, borderTopWidth: 1, borderTopColor: colors.border, gap: 2 },
  docHead: { flexDirection: 'row', justifyContent: 'space-between', alignItems: 'center', gap: space.sm },
  name: { fontSize: font.body, fontWeight: '600', color: colors.text, flexShrink: 1 },
  meta: { fontSize: font.small, color: colors.muted },
});
