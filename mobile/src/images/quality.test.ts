import { assessPixels, MIN_LAPLACIAN_VARIANCE } from './quality';

/** An RGBA image from a luma function. */
function image(width: number, height: number, luma: (x: number, y: number) => number): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const v = Math.max(0, Math.min(255, Math.round(luma(x, y))));
      out.set([v, v, v, 255], i);
    }
  return out;
}

describe('assessPixels', () => {
  it('passes a sharp, evenly lit photo', () => {
    // a lesion-like dark disc with a textured edge on mid-grey skin
    const px = image(256, 192, (x, y) => (Math.hypot(x - 128, y - 96) < 50 ? 70 : 170) + ((x * 7 + y * 13) % 23));
    const report = assessPixels(px, 256, 192, 3024);
    expect(report.ok).toBe(true);
    expect(report.sharpness).toBeGreaterThan(MIN_LAPLACIAN_VARIANCE);
  });

  it('flags a blurred photo (smooth gradient, no detail)', () => {
    const px = image(256, 192, (x) => 100 + x * 0.2);
    expect(assessPixels(px, 256, 192, 3024).problems).toEqual(['blurred']);
  });

  it('flags under- and over-exposure and a too small photo', () => {
    const texture = (x: number, y: number) => ((x * 7 + y * 13) % 23) - 11;
    expect(assessPixels(image(200, 150, (x, y) => 8 + texture(x, y) / 2), 200, 150, 1000).problems).toContain('too_dark');
    expect(assessPixels(image(200, 150, (x, y) => 250 + texture(x, y) / 3), 200, 150, 1000).problems).toContain('too_bright');
    expect(assessPixels(image(200, 150, (x, y) => 128 + texture(x, y)), 200, 150, 120).problems).toEqual(['low_resolution']);
  });
});
