import { StyleSheet, Text, View } from 'react-native';

import { colors, font, space } from './theme';

/** A read-only "label: value" line for detail screens. */
export function Field({ label, value, testID }: { label: string; value: string | number | null | undefined; testID?: string }) {
  return (
    <View style={styles.row}>
      <Text style={styles.label}>{label}</Text>
      <Text style={styles.value} testID={testID}>
        {value === null || value === undefined || value === '' ? '—' : String(value)}
      </Text>
    </View>
  );
}

export function Muted({ children }: { children: string }) {
  return <Text style={styles.muted}>{children}</Text>;
}

const styles = StyleSheet.create({
  row: { flexDirection: 'row', gap: space.md, paddingVertical: 2, flexWrap: 'wrap' },
  label: { width: 150, fontSize: font.small, color: colors.muted, fontWeight: '600' },
  value: { flex: 1, minWidth: 140, fontSize: font.body, color: colors.text },
  muted: { fontSize: font.small, color: colors.muted, lineHeight: 19 },
});
