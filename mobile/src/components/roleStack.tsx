import { Redirect, Stack } from 'expo-router';
import { ActivityIndicator, View } from 'react-native';

import type { User } from '../api/auth';
import { homeFor, useSession } from '../auth/session';
import { colors } from '../ui';
import { HeaderActions } from './HeaderActions';

/**
 * The stack of one role's screens. Nothing renders before sign-in (no clinical data on a locked app),
 * and a person who opens another role's address is sent to their own home.
 */
export function RoleStack({ role }: { role: User['role'] }) {
  const { status, user } = useSession();
  if (status === 'loading') {
    return (
      <View style={{ flex: 1, justifyContent: 'center', backgroundColor: colors.background }}>
        <ActivityIndicator color={colors.primary} accessibilityLabel="Loading" />
      </View>
    );
  }
  if (!user) return <Redirect href="/sign-in" />;
  if (user.role !== role) return <Redirect href={homeFor(user) as never} />;
  return (
    <Stack
      screenOptions={{
        headerStyle: { backgroundColor: colors.surface },
        headerTintColor: colors.primary,
        headerTitleStyle: { color: colors.text, fontWeight: '700' },
        headerRight: () => <HeaderActions />,
        contentStyle: { backgroundColor: colors.background },
      }}
    />
  );
}
