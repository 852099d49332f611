import { StyleSheet, Text, TextInput, type TextInputProps, View } from 'react-native';

import { colors, font, radius, space } from './theme';

export type TextFieldProps = TextInputProps & {
  label: string;
  hint?: string;
  error?: string | null;
};

/** A labelled text input; the label doubles as the accessible name. */
export function TextField({ label, hint, error, style, multiline, ...rest }: TextFieldProps) {
  return (
    <View style={styles.wrap}>
      <Text style={styles.label}>{label}</Text>
      <TextInput
        accessibilityLabel={label}
        placeholderTextColor={colors.subtle}
        multiline={multiline}
        style={[styles.input, multiline && styles.multiline, error ? styles.invalid : null, style]}
        {...rest}
      />
      {error ? <Text style={styles.error}>{error}</Text> : hint ? <Text style={styles.hint}>{hint}</Text> : null}
    </View>
  );
}

const styles = StyleSheet.create({
  wrap: { gap: space.xs, marginBottom: space.md },
  label: { fontSize: font.small, fontWeight: '600', color: colors.text },
  input: {
    borderWidth: 1,
    borderColor: colors.border,
    borderRadius: radius.sm,
    paddingHorizontal: space.md,
    paddingVertical: space.sm + 2,
    fontSize: font.body,
    color: colors.text,
    backgroundColor: colors.surface,
  },
  multiline: { minHeight: 88, textAlignVertical: 'top' },
  invalid: { borderColor: colors.danger },
  hint: { fontSize: font.small, color: colors.muted },
  error: { fontSize: font.small, color: colors.danger },
});
