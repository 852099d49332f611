import { useEffect, useMemo, useState } from 'react';
import { PanResponder, Platform, StyleSheet, Text, View } from 'react-native';
import Svg, { Path } from 'react-native-svg';

import { Button, colors, font, radius, space } from '../ui';

type Point = [number, number];
export const PAD_WIDTH = 320;
export const PAD_HEIGHT = 160;

function pathOf(stroke: Point[]): string {
  return stroke.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`).join(' ');
}

/** Rasterise the strokes to a PNG (base64, no data: prefix): a canvas on the web build, the SVG's own renderer on phones. */
export async function strokesToPng(strokes: Point[][], svg: { toDataURL?: (cb: (b64: string) => void) => void } | null): Promise<string> {
  if (Platform.OS === 'web' && typeof document !== 'undefined') {
    const canvas = document.createElement('canvas');
    canvas.width = PAD_WIDTH;
    canvas.height = PAD_HEIGHT;
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no canvas');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, PAD_WIDTH, PAD_HEIGHT);
    ctx.strokeStyle = '#0f172a';
    ctx.lineWidth = 2.5;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    for (const stroke of strokes) {
      ctx.beginPath();
      stroke.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (stroke.length === 1) ctx.lineTo(stroke[0][0] + 0.5, stroke[0][1] + 0.5);
      ctx.stroke();
    }
    return canvas.toDataURL('image/png').split(',')[1];
  }
  return new Promise((resolve, reject) => {
    if (!svg?.toDataURL) reject(new Error('signature capture is not available'));
    else svg.toDataURL((b64) => resolve(b64));
  });
}

/** Draw a signature with a finger (or the mouse on the web build). */
export function SignaturePad({ onChange, svgRef }: { onChange: (strokes: Point[][]) => void; svgRef: React.RefObject<unknown> }) {
  const [strokes, setStrokes] = useState<Point[][]>([]);

  useEffect(() => {
    onChange(strokes);
  }, [strokes, onChange]);

  const responder = useMemo(
    () =>
      PanResponder.create({
        onStartShouldSetPanResponder: () => true,
        onMoveShouldSetPanResponder: () => true,
        onPanResponderGrant: (e) => {
          const point: Point = [e.nativeEvent.locationX, e.nativeEvent.locationY];
          setStrokes((all) => [...all, [point]]);
        },
        onPanResponderMove: (e) => {
          const point: Point = [e.nativeEvent.locationX, e.nativeEvent.locationY];
          setStrokes((all) => [...all.slice(0, -1), [...(all[all.length - 1] ?? []), point]]);
        },
      }),
    [],
  );

  const clear = () => setStrokes([]);

  return (
    <View style={styles.wrap}>
      <Text style={styles.label}>Patient&apos;s signature</Text>
      <View style={styles.pad} {...responder.panHandlers} testID="signature-pad" accessibilityLabel="Signature pad: sign here">
        <Svg ref={svgRef as never} width={PAD_WIDTH} height={PAD_HEIGHT} style={styles.svg} pointerEvents="none">
          {strokes.map((s, i) => (
            <Path key={i} d={pathOf(s)} stroke={colors.text} strokeWidth={2.5} fill="none" strokeLinecap="round" strokeLinejoin="round" />
          ))}
        </Svg>
        {!strokes.length ? (
          <Text style={styles.placeholder} pointerEvents="none">
            Sign here
          </Text>
        ) : null}
      </View>
      <Button compact variant="ghost" title="Clear signature" onPress={clear} testID="signature-clear" />
    </View>
  );
}

const styles = StyleSheet.create({
  wrap: { gap: space.xs, marginBottom: space.md, alignItems: 'flex-start' },
  label: { fontSize: font.small, fontWeight: '600', color: colors.text },
  pad: {
    width: PAD_WIDTH,
    height: PAD_HEIGHT,
    borderWidth: 1,
    borderStyle: 'dashed',
    borderColor: colors.subtle,
    borderRadius: radius.md,
    backgroundColor: '#fff',
    overflow: 'hidden',
    justifyContent: 'center',
    alignItems: 'center',
  },
  svg: { position: 'absolute', left: 0, top: 0 },
  placeholder: { color: colors.subtle, fontSize: font.body },
});
