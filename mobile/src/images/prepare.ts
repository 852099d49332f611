/**
 * Turn a picked photo into what the app uploads: a JPEG whose long side is at most 1600 px (a 12 MP
 * phone photo shrinks from several MB to a few hundred kB), plus the on-device quality report.
 */
import { manipulateAsync, SaveFormat } from 'expo-image-manipulator';
import { decode } from 'jpeg-js';

import { base64ToBytes, type UploadImage } from '../api/cases';
import { ANALYSIS_LONG_SIDE, assessPixels, type QualityReport } from './quality';

export const UPLOAD_LONG_SIDE = 1600;

export type PreparedImage = UploadImage & { quality: QualityReport };

function resizeTo(width: number, height: number, longSide: number) {
  if (Math.max(width, height) <= longSide) return [];
  return [{ resize: width >= height ? { width: longSide } : { height: longSide } }];
}

function stripDataUri(base64: string): string {
  const comma = base64.indexOf(',');
  return base64.startsWith('data:') && comma >= 0 ? base64.slice(comma + 1) : base64;
}

export async function prepareImage(asset: { uri: string; width: number; height: number }): Promise<PreparedImage> {
  const upload = await manipulateAsync(asset.uri, resizeTo(asset.width, asset.height, UPLOAD_LONG_SIDE), {
    compress: 0.85,
    format: SaveFormat.JPEG,
    base64: true,
  });
  const small = await manipulateAsync(upload.uri, resizeTo(upload.width, upload.height, ANALYSIS_LONG_SIDE), {
    compress: 0.95,
    format: SaveFormat.JPEG,
    base64: true,
  });
  const pixels = decode(base64ToBytes(stripDataUri(small.base64 ?? '')), { useTArray: true, formatAsRGBA: true });
  const quality = assessPixels(pixels.data, pixels.width, pixels.height, Math.min(asset.width, asset.height));
  return { uri: upload.uri, base64: stripDataUri(upload.base64 ?? ''), width: upload.width, height: upload.height, quality };
}
