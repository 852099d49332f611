import { Stack } from 'expo-router';
import type { ReactNode } from 'react';
import { ActivityIndicator, RefreshControl, ScrollView, StyleSheet, Text, View } from 'react-native';

import { colors, font, space } from './theme';

/**
 * Every screen's frame: a scrolling column, centred and width-limited on desktop browsers. The title goes
 * to the navigation header (one heading per screen, not two).
 */
export function Screen({
  title,
  subtitle,
  children,
  loading,
  onRefresh,
  testID,
  wide,
}: {
  title?: string;
  subtitle?: string;
  children?: ReactNode;
  loading?: boolean;
  onRefresh?: () => void;
  testID?: string;
  wide?: boolean;
}) {
  return (
    <>
    {title ? <Stack.Screen options={{ title }} /> : null}
    <ScrollView
      style={styles.scroll}
      contentContainerStyle={styles.content}
      keyboardShouldPersistTaps="handled"
      testID={testID}
      refreshControl={onRefresh ? <RefreshControl refreshing={false} onRefresh={onRefresh} /> : undefined}
    >
      <View style={[styles.column, wide && styles.wide]}>
        {subtitle ? <Text style={styles.subtitle}>{subtitle}</Text> : null}
        {loading ? <ActivityIndicator style={styles.spinner} color={colors.primary} accessibilityLabel="Loading" /> : null}
        {children}
      </View>
    </ScrollView>
    </>
  );
}

const styles = StyleSheet.create({
  scroll: { flex: 1, backgroundColor: colors.background },
  content: { padding: space.lg, paddingBottom: space.xxl * 2, alignItems: 'center' },
  column: { width: '100%', maxWidth: 760 },
  wide: { maxWidth: 1100 },
  subtitle: { fontSize: font.body, color: colors.muted, marginBottom: space.lg, lineHeight: 21 },
  spinner: { marginVertical: space.xl },
});
