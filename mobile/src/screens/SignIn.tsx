import { Redirect, useRouter } from 'expo-router';
import { useEffect, useRef, useState } from 'react';
import { StyleSheet, Text, View } from 'react-native';

import { ssoConfig } from '../api/auth';
import { ApiError } from '../api/client';
import type { Schemas } from '../api/client-types';
import { describeError } from '../api/errors';
import { homeFor, useSession } from '../auth/session';
import { consumeSsoReturn, goToSsoLogin, peekSsoReturn, ssoInThisApp } from '../auth/sso';
import { Banner, Button, Card, colors, font, Screen, space, TextField } from '../ui';

/** Sign-in for every role; a second step asks for the authenticator code when the account has one. */
export default function SignIn() {
  const { signIn, signInWithSso, lost, user } = useSession();
  const router = useRouter();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [needsCode, setNeedsCode] = useState(false);
  const [busy, setBusy] = useState(false);
  const [ssoReturn] = useState(() => (ssoInThisApp() ? peekSsoReturn() : null));
  const [error, setError] = useState<string | null>(() =>
    ssoReturn?.error ? describeError(new ApiError(401, 'sso_refused', ssoReturn.errorDescription)) : null,
  );
  const [sso, setSso] = useState<Schemas['SsoConfig'] | null>(null);
  /** The one-time code of a single sign-on in progress (kept for the TOTP step, which resends it). */
  const [ssoCode, setSsoCode] = useState<string | null>(ssoReturn?.code ?? null);
  const ssoStarted = useRef(false);

  const finish = async (attempt: () => Promise<Schemas['UserOut']>) => {
    setBusy(true);
    setError(null);
    try {
      const who = await attempt();
      router.replace(homeFor(who) as never);
    } catch (e) {
      if (e instanceof ApiError && e.type === 'totp_required') {
        setNeedsCode(true);
      } else {
        setError(describeError(e));
        // A wrong authenticator code keeps the code step (try the next code); any other refusal of an SSO
        // exchange (expired or used one-time code) means starting the hospital sign-in again.
        if (ssoCode && !(e instanceof ApiError && e.type === 'invalid_credentials')) {
          setSsoCode(null);
          setNeedsCode(false);
        }
      }
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    if (!ssoInThisApp()) return;
    let alive = true;
    ssoConfig().then(
      (config) => alive && setSso(config),
      () => undefined, // no SSO answer: the password form stays, as before
    );
    if (!ssoStarted.current && ssoReturn) {
      ssoStarted.current = true;
      consumeSsoReturn();
      const oneTime = ssoReturn.code;
      // After this render: the exchange updates the screen as it goes.
      if (oneTime) Promise.resolve().then(() => finish(() => signInWithSso(oneTime)));
    }
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- once, on arrival
  }, []);

  if (user) return <Redirect href={homeFor(user) as never} />;

  const submit = () =>
    finish(() => (ssoCode ? signInWithSso(ssoCode, code.trim()) : signIn(email.trim(), password, needsCode ? code.trim() : undefined)));
  const passwordForm = !sso || sso.password_login_enabled;
  const ssoButton = sso?.enabled && sso.login_url && !needsCode ? (
    <Button
      variant={passwordForm ? 'secondary' : 'primary'}
      title={`Sign in with ${sso.display_name}`}
      onPress={() => goToSsoLogin(sso.login_url as string)}
      disabled={busy}
      testID="sso-sign-in"
    />
  ) : null;

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
        {ssoCode && busy && !needsCode ? <Text style={styles.help}>Signing you in with your hospital account…</Text> : null}
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
        ) : passwordForm ? (
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
        ) : null}
        {needsCode || passwordForm ? (
          <Button
            title={needsCode ? 'Verify and sign in' : 'Sign in'}
            onPress={submit}
            busy={busy}
            testID="sign-in-submit"
            disabled={needsCode ? !code.trim() : !email || !password}
          />
        ) : null}
        {ssoButton && passwordForm ? <Text style={styles.or}>or</Text> : null}
        {ssoButton}
        {needsCode ? (
          <Button
            variant="ghost"
            title="Back"
            onPress={() => {
              setNeedsCode(false);
              setSsoCode(null);
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
  or: { textAlign: 'center', fontSize: font.small, color: colors.muted, marginVertical: space.xs },
  help: { fontSize: font.body, color: colors.muted, marginBottom: space.sm },
  footer: { textAlign: 'center', fontSize: font.small, color: colors.muted, marginTop: space.md, maxWidth: 440, alignSelf: 'center' },
});
