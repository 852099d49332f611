/**
 * On-device photo checks, the same three measures (and thresholds) the server's triage uses
 * (backend/images/quality.py), so the clinician can retake a poor photo before it is sent:
 * sharpness (variance of the 4-neighbour Laplacian on a copy whose long side is 256 px), exposure
 * (fractions of nearly black and nearly white pixels) and resolution (the original's shorter side).
 */
export const ANALYSIS_LONG_SIDE = 256;
export const MIN_LAPLACIAN_VARIANCE = 4.0;
export const DARK_LEVEL = 20;
export const MAX_DARK_FRACTION = 0.5;
export const BRIGHT_LEVEL = 245;
export const MAX_BRIGHT_FRACTION = 0.5;
export const MIN_SHORT_SIDE = 150;

export type QualityProblem = 'blurred' | 'too_dark' | 'too_bright' | 'low_resolution';

export type QualityReport = {
  ok: boolean;
  problems: QualityProblem[];
  sharpness: number;
  darkFraction: number;
  brightFraction: number;
  shortSide: number;
};

/** What to do about each problem, in words for the person holding the phone. */
export const RETAKE_GUIDANCE: Record<QualityProblem, string> = {
  blurred: 'The photo looks blurred. Hold the phone steady, tap the lesion to focus, and retake it.',
  too_dark: 'The photo is too dark. Move to better light or turn on the room light, then retake it.',
  too_bright: 'The photo is washed out. Avoid direct flash or sunlight on the skin, then retake it.',
  low_resolution: 'The photo is too small to assess. Move closer so the lesion fills most of the frame.',
};

/** Measure an RGBA pixel buffer (already downscaled to about 256 px on its long side). */
export function assessPixels(rgba: ArrayLike<number>, width: number, height: number, originalShortSide: number): QualityReport {
  const n = width * height;
  const luma = new Float32Array(n);
  let dark = 0;
  let bright = 0;
  for (let i = 0; i < n; i++) {
    // ITU-R 601-2 luma, as PIL's convert("L") rounds it
    const y = Math.round((rgba[i * 4] * 299 + rgba[i * 4 + 1] * 587 + rgba[i * 4 + 2] * 114) / 1000);
    luma[i] = y;
    if (y < DARK_LEVEL) dark++;
    if (y > BRIGHT_LEVEL) bright++;
  }
  let sum = 0;
  let sumSq = 0;
  let count = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const lap = luma[i - 1] + luma[i + 1] + luma[i - width] + luma[i + width] - 4 * luma[i];
      sum += lap;
      sumSq += lap * lap;
      count++;
    }
  }
  const mean = count ? sum / count : 0;
  const sharpness = count ? sumSq / count - mean * mean : 0;
  const darkFraction = n ? dark / n : 0;
  const brightFraction = n ? bright / n : 0;
  const problems: QualityProblem[] = [];
  if (sharpness < MIN_LAPLACIAN_VARIANCE) problems.push('blurred');
  if (darkFraction > MAX_DARK_FRACTION) problems.push('too_dark');
  if (brightFraction > MAX_BRIGHT_FRACTION) problems.push('too_bright');
  if (originalShortSide < MIN_SHORT_SIDE) problems.push('low_resolution');
  return { ok: problems.length === 0, problems, sharpness, darkFraction, brightFraction, shortSide: originalShortSide };
}
