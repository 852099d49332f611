import { Redirect, useRouter } from 'expo-router';
import { useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { ApiError } from '../api/client';
import { describeError } from '../api/errors';
import { homeFor, useSession } from '../auth/session';
import { Banner, Button, Card, colors, font, Screen, space, TextField } from '../ui';

/** Sign-in for every role; a second step asks for the authenticator code when the account has one. */
export default function SignIn() {
  const { signIn, lost, user } = useSession();
  const router = useRouter();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [needsCode, setNeedsCode] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  if (user) return <Redirect href={homeFor(user) as never} />;

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const who = await signIn(email.trim(), password, needsCode ? code.trim() : undefined);
      router.replace(homeFor(who) as never);
    } catch (e) {
      if (e instanceof ApiError && e.type === 'totp_required') {
        setNeedsCode(true);
      } else {
        setError(describeError(e));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Screen testID="sign-in-screen">
      <View style={styles.brand}>
        <Text style={styles.logo} accessibilityRole="header">
          DermaLink
        </Text>
        <Text style={styles.tagline}>Teledermatology decision support</Text>
      </View>
      <Card title={needsCode ? 'Two-step verification' : 'Sign in'} style={styles.card}>
        {lost ? (
          <Banner
            tone="warning"
            testID="session-ended"
            title="Your session has ended"
            message="Sign in again to continue. Cases you had not sent are kept and will be sent after you sign in."
          />
        ) : null}
        {error ? <Banner tone="danger" message={error} testID="sign-in-error" /> : null}
        {needsCode ? (
          <>
            <Text style={styles.help}>Open your authenticator app and enter the 6-digit code for DermaLink.</Text>
            <TextField
              label="Authenticator code"
              value={code}
              onChangeText={setCode}
              keyboardType="number-pad"
              autoComplete="one-time-code"
              maxLength={8}
              testID="totp-code"
              onSubmitEditing={submit}
              autoFocus
            />
          </>
        ) : (
          <>
            <TextField
              label="E-mail"
              value={email}
              onChangeText={setEmail}
              autoCapitalize="none"
              autoComplete="email"
              keyboardType="email-address"
              testID="email"
            />
            <TextField
              label="Password"
              value={password}
              onChangeText={setPassword}
              secureTextEntry
              autoComplete="password"
              testID="password"
              onSubmitEditing={submit}
            />
          </>
        )}
        <Button title={needsCode ? 'Verify and sign in' : 'Sign in'} onPress={submit} busy={busy} testID="sign-in-submit" disabled={!email || !password} />
        {needsCode ? (
          <Button
            variant="ghost"
            title="Back"
            onPress={() => {
              setNeedsCode(false);
              setCode('');
            }}
          />
        ) : null}
      </Card>
      <Text style={styles.footer}>
        DermaLink supports, and never replaces, a clinician&apos;s diagnosis. Access to patient data is recorded.
      </Text>
    </Screen>
  );
}

const styles = StyleSheet.create({
  brand: { alignItems: 'center', marginTop: space.xxl, marginBottom: space.xl },
  logo: { fontSize: font.hero + 4, fontWeight: '800', color: colors.primary, letterSpacing: 0.5 },
  tagline: { fontSize: font.body, color: colors.muted, marginTop: space.xs },
  card: { maxWidth: 440, width: '100%', alignSelf: 'center' },
  help: { fontSize: font.body, color: colors.muted, marginBottom: space.sm },
  footer: { textAlign: 'center', fontSize: font.small, color: colors.muted, marginTop: space.md, maxWidth: 440, alignSelf: 'center' },
});
