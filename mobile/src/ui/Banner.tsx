import { StyleSheet, Text, View } from 'react-native';

import { colors, font, radius, space } from './theme';

type Tone = 'info' | 'success' | 'warning' | 'danger';

const tones: Record<Tone, { bg: string; fg: string }> = {
  info: { bg: colors.infoSoft, fg: colors.info },
  success: { bg: colors.successSoft, fg: colors.success },
  warning: { bg: colors.warningSoft, fg: colors.warning },
  danger: { bg: colors.dangerSoft, fg: colors.danger },
};

/** A short message in a coloured box; errors use role "alert" so screen readers announce them. */
export function Banner({ tone = 'info', title, message, testID }: { tone?: Tone; title?: string; message: string; testID?: string }) {
  const t = tones[tone];
  return (
    <View
      style={[styles.box, { backgroundColor: t.bg, borderLeftColor: t.fg }]}
      accessibilityRole={tone === 'danger' || tone === 'warning' ? 'alert' : undefined}
      testID={testID}
    >
      {title ? <Text style={[styles.title, { color: t.fg }]}>{title}</Text> : null}
      <Text style={[styles.message, { color: colors.text }]}>{message}</Text>
    </View>
  );
}

const styles = StyleSheet.create({
  box: { borderLeftWidth: 4, borderRadius: radius.sm, padding: space.md, marginBottom: space.md, gap: 2 },
  title: { fontSize: font.body, fontWeight: '700' },
  message: { fontSize: font.body, lineHeight: 21 },
});
