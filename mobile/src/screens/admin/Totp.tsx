import { useRouter } from 'expo-router';
import { useState } from 'react';
import { Image, Platform, StyleSheet, Text, View } from 'react-native';
import { SvgXml } from 'react-native-svg';

import { beginTotpEnrolment, confirmTotpEnrolment } from '../../api/auth';
import type { Schemas } from '../../api/client-types';
import { describeError } from '../../api/errors';
import { useSession } from '../../auth/session';
import { Banner, Button, Card, colors, font, Muted, Screen, space, TextField } from '../../ui';

/** The enrolment QR code: an SVG data URI, drawn by the browser on web and by react-native-svg on phones. */
function QrCode({ dataUri }: { dataUri: string }) {
  if (Platform.OS === 'web') {
    return <Image source={{ uri: dataUri }} style={styles.qr} accessibilityLabel="QR code for the authenticator app" />;
  }
  const [header, payload = ''] = dataUri.split(',', 2);
  const xml = header.endsWith(';base64') ? atob(payload) : decodeURIComponent(payload);
  return (
    <View style={styles.qr} accessibilityLabel="QR code for the authenticator app">
      <SvgXml xml={xml} width="100%" height="100%" />
    </View>
  );
}

/** Administrators must turn on two-step verification before they can act as administrators. */
export default function Totp() {
  const router = useRouter();
  const { reloadUser, user } = useSession();
  const [enrolment, setEnrolment] = useState<Schemas['TotpEnrolment'] | null>(null);
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  /** The API asks for the password again before it hands out a new secret (a stolen session alone cannot). */
  const begin = async () => {
    setBusy(true);
    setError(null);
    try {
      setEnrolment(await beginTotpEnrolment(password));
      setPassword('');
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await confirmTotpEnrolment(code.trim());
      await reloadUser();
      router.replace('/admin');
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Screen title="Set up two-step verification" subtitle="Administrators sign in with a password and a code from an authenticator app." testID="totp-screen">
      {error ? <Banner tone="danger" message={error} /> : null}
      {user?.totp_enabled ? <Banner tone="success" message="Two-step verification is on for your account." /> : null}
      {!enrolment && !user?.totp_enabled ? (
        <Card title="Confirm it is you">
          <Muted>Enter your password again to set up the authenticator app.</Muted>
          <TextField label="Password" value={password} onChangeText={setPassword} secureTextEntry autoComplete="current-password" testID="totp-password" />
          <Button title="Continue" onPress={begin} busy={busy} disabled={!password} testID="totp-begin" />
        </Card>
      ) : null}
      {enrolment ? (
        <Card title="1. Scan this code with your authenticator app">
          <QrCode dataUri={enrolment.qr_svg_data_uri} />
          <Muted>Or type this key into the app:</Muted>
          <Text style={styles.secret} selectable testID="totp-secret">
            {enrolment.secret}
          </Text>
        </Card>
      ) : null}
      {enrolment ? (
        <Card title="2. Enter the code it shows">
          <TextField label="Authenticator code" value={code} onChangeText={setCode} keyboardType="number-pad" maxLength={8} testID="totp-confirm-code" />
          <Button title="Turn on two-step verification" onPress={confirm} busy={busy} disabled={code.trim().length < 6} testID="totp-confirm" />
        </Card>
      ) : null}
    </Screen>
  );
}

const styles = StyleSheet.create({
  qr: { width: 200, height: 200, alignSelf: 'center', marginVertical: space.md },
  secret: { fontFamily: 'monospace', fontSize: font.large, color: colors.text, letterSpacing: 1 },
});
