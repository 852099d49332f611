import { Redirect } from 'expo-router';
import { ActivityIndicator, View } from 'react-native';

import { homeFor, useSession } from '../auth/session';
import { colors } from '../ui';

/** The entry point: sign-in, or the signed-in person's home for their role. */
export default function Index() {
  const { status, user } = useSession();
  if (status === 'loading') {
    return (
      <View style={{ flex: 1, justifyContent: 'center', backgroundColor: colors.background }}>
        <ActivityIndicator color={colors.primary} accessibilityLabel="Loading" />
      </View>
    );
  }
  return <Redirect href={(user ? homeFor(user) : '/sign-in') as never} />;
}
