import { Pressable, StyleSheet, Text, View } from 'react-native';

import { colors, font, radius, space } from './theme';

export type Option<T extends string> = { value: T; label: string };

/** A row of pills for a small closed set (sex, site, concern...); one or several may be chosen. */
export function Choice<T extends string>({
  label,
  options,
  value,
  onChange,
  testID,
}: {
  label: string;
  options: Option<T>[];
  value: T | T[] | null;
  onChange: (value: T) => void;
  testID?: string;
}) {
  const chosen = (v: T) => (Array.isArray(value) ? value.includes(v) : value === v);
  const multiple = Array.isArray(value);
  return (
    <View style={styles.wrap} testID={testID}>
      <Text style={styles.label}>{label}</Text>
      <View style={styles.row} accessibilityRole={multiple ? undefined : 'radiogroup'} accessibilityLabel={label}>
        {options.map((o) => (
          <Pressable
            key={o.value}
            accessibilityRole={multiple ? 'checkbox' : 'radio'}
            accessibilityLabel={o.label}
            accessibilityState={multiple ? { checked: chosen(o.value) } : { selected: chosen(o.value) }}
            onPress={() => onChange(o.value)}
            style={[styles.pill, chosen(o.value) && styles.on]}
            testID={testID ? `${testID}-${o.value}` : undefined}
          >
            <Text style={[styles.pillText, chosen(o.value) && styles.onText]}>{o.label}</Text>
          </Pressable>
        ))}
      </View>
    </View>
  );
}

const styles = StyleSheet.create({
  wrap: { gap: space.xs, marginBottom: space.md },
  label: { fontSize: font.small, fontWeight: '600', color: colors.text },
  row: { flexDirection: 'row', flexWrap: 'wrap', gap: space.sm },
  pill: {
    borderWidth: 1,
    borderColor: colors.border,
    backgroundColor: colors.surface,
    borderRadius: radius.lg * 2,
    paddingHorizontal: space.md,
    paddingVertical: space.xs + 2,
    maxWidth: '100%', // a long label (a follow-up of a described lesion) wraps inside the pill on a phone
  },
  on: { backgroundColor: colors.primary, borderColor: colors.primary },
  pillText: { fontSize: font.small, color: colors.text },
  onText: { color: '#fff', fontWeight: '600' },
});
