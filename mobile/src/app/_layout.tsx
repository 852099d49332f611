import { Stack } from 'expo-router';
import { StatusBar } from 'expo-status-bar';

import { SessionProvider } from '../auth/session';
import { captureSsoReturn } from '../auth/sso';
import { colors } from '../ui';

// Before the first route renders (and redirects): the SSO return lives in the address bar's hash.
captureSsoReturn();

export default function RootLayout() {
  return (
    <SessionProvider>
      <StatusBar style="dark" />
      <Stack screenOptions={{ headerShown: false, contentStyle: { backgroundColor: colors.background } }} />
    </SessionProvider>
  );
}
