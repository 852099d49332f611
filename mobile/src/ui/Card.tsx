import type { ReactNode } from 'react';
import { StyleSheet, Text, View, type ViewStyle } from 'react-native';

import { colors, font, radius, space } from './theme';

export function Card({ title, children, style, testID, right }: { title?: string; children: ReactNode; style?: ViewStyle; testID?: string; right?: ReactNode }) {
  return (
    <View style={[styles.card, style]} testID={testID}>
      {title || right ? (
        <View style={styles.head}>
          {title ? (
            <Text style={styles.title} accessibilityRole="header">
              {title}
            </Text>
          ) : null}
          {right}
        </View>
      ) : null}
      {children}
    </View>
  );
}

const styles = StyleSheet.create({
  card: {
    backgroundColor: colors.surface,
    borderRadius: radius.lg,
    borderWidth: 1,
    borderColor: colors.border,
    padding: space.lg,
    marginBottom: space.lg,
    gap: space.sm,
  },
  head: { flexDirection: 'row', justifyContent: 'space-between', alignItems: 'center', gap: space.sm },
  title: { fontSize: font.large, fontWeight: '700', color: colors.text, flexShrink: 1 },
});
