import { useRouter } from 'expo-router';
import { StyleSheet, Text, View } from 'react-native';

import { useSession } from '../auth/session';
import { Button, colors, font, space } from '../ui';
import { clearAllDrafts } from './drafts';
import { forgetPatients } from './recentPatients';

/** The header's right side: who is signed in, and sign out. */
export function HeaderActions() {
  const { user, signOut } = useSession();
  const router = useRouter();
  if (!user) return null;
  return (
    <View style={styles.row}>
      <Text style={styles.who} numberOfLines={1}>
        {user.full_name}
      </Text>
      <Button
        compact
        variant="ghost"
        title="Sign out"
        testID="sign-out"
        onPress={async () => {
          await signOut();
          clearAllDrafts();
          forgetPatients();
          router.replace('/sign-in');
        }}
      />
    </View>
  );
}

const styles = StyleSheet.create({
  row: { flexDirection: 'row', alignItems: 'center', gap: space.xs, marginRight: space.sm },
  who: { fontSize: font.small, color: colors.muted, maxWidth: 160 },
});
