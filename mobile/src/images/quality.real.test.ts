/**
 * The on-device checks against real HAM10000 photos (../shared at the repository's side, as the backend's
 * tests and the end-to-end run use them): real dermoscopy passes, the same photo blurred does not.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { decode } from 'jpeg-js';

import { ANALYSIS_LONG_SIDE, assessPixels } from './quality';

const FULL_SIZE = join(__dirname, '..', '..', '..', '..', 'shared', 'data', 'ham10000', 'full_size');
const photos = existsSync(FULL_SIZE) ? readdirSync(FULL_SIZE).filter((f) => f.endsWith('.jpg')).sort().slice(0, 3) : [];

/** Box-downscale RGBA to ANALYSIS_LONG_SIDE on the long side (what the app's resize produces, near enough). */
function downscale(data: Uint8Array, width: number, height: number) {
  const scale = ANALYSIS_LONG_SIDE / Math.max(width, height);
  const w = Math.round(width * scale);
  const h = Math.round(height * scale);
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [x0, x1] = [Math.floor(x / scale), Math.max(Math.floor(x / scale) + 1, Math.floor((x + 1) / scale))];
      const [y0, y1] = [Math.floor(y / scale), Math.max(Math.floor(y / scale) + 1, Math.floor((y + 1) / scale))];
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) sum += data[(yy * width + xx) * 4 + c];
        out[(y * w + x) * 4 + c] = sum / ((x1 - x0) * (y1 - y0));
      }
      out[(y * w + x) * 4 + 3] = 255;
    }
  return { data: out, width: w, height: h };
}

/** A strong blur (box filter, radius r, separable) like a shaken or out-of-focus photo. */
function blur(data: Uint8Array, width: number, height: number, r: number): Uint8Array {
  const pass = (src: Uint8Array, horizontal: boolean) => {
    const dst = new Uint8Array(src.length);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        for (let c = 0; c < 4; c++) {
          let sum = 0;
          let n = 0;
          for (let k = -r; k <= r; k++) {
            const xx = horizontal ? x + k : x;
            const yy = horizontal ? y : y + k;
            if (xx < 0 || yy < 0 || xx >= width || yy >= height) continue;
            sum += src[(yy * width + xx) * 4 + c];
            n++;
          }
          dst[(y * width + x) * 4 + c] = sum / n;
        }
    return dst;
  };
  return pass(pass(data, true), false);
}

(photos.length ? describe : describe.skip)('assessPixels on real HAM10000 photos', () => {
  it.each(photos)('%s passes, and fails as blurred once blurred', (name) => {
    const image = decode(readFileSync(join(FULL_SIZE, name)), { useTArray: true, formatAsRGBA: true });
    const small = downscale(image.data, image.width, image.height);
    const report = assessPixels(small.data, small.width, small.height, Math.min(image.width, image.height));
    expect(report.problems).toEqual([]);

    const blurred = downscale(blur(image.data, image.width, image.height, 8), image.width, image.height);
    expect(assessPixels(blurred.data, blurred.width, blurred.height, Math.min(image.width, image.height)).problems).toContain('blurred');
  });
});
