import { Platform } from 'react-native';

import { request, requestJson } from './client';
import type { Schemas } from './client-types';

export type Case = Schemas['CaseOut'];
export type CaseSummary = Schemas['CaseSummary'];
export type QueueItem = Schemas['QueueItem'];
export type CaseMetadata = Schemas['CaseCreate'];
export type Answer = Schemas['AnswerCreate'];

/** A photo ready to upload: a file URI on phones, base64 JPEG everywhere (the web upload and the offline queue). */
export type UploadImage = { uri: string; base64: string; width: number; height: number };

export function base64ToBytes(base64: string): Uint8Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function caseForm(metadata: CaseMetadata, images: UploadImage[]): FormData {
  const form = new FormData();
  form.append('metadata', JSON.stringify(metadata));
  images.forEach((image, i) => {
    if (Platform.OS === 'web') {
      const bytes = base64ToBytes(image.base64);
      form.append('images', new Blob([bytes.buffer as ArrayBuffer], { type: 'image/jpeg' }), `lesion-${i + 1}.jpg`);
    } else {
      // React Native's FormData streams a file URI; it has no Blob from bytes.
      form.append('images', { uri: image.uri, type: 'image/jpeg', name: `lesion-${i + 1}.jpg` } as unknown as Blob);
    }
  });
  return form;
}

/** Submit a case. A retry with the same idempotency key returns the stored case, never a duplicate. */
export function submitCase(metadata: CaseMetadata, images: UploadImage[], idempotencyKey: string): Promise<Case> {
  return requestJson<Case>('/cases', {
    method: 'POST',
    form: caseForm(metadata, images),
    headers: { 'Idempotency-Key': idempotencyKey },
  });
}

export function listCases(params: { state?: string; cursor?: string | null; limit?: number } = {}): Promise<Schemas['Page_CaseSummary_']> {
  return requestJson('/cases', { query: { ...params } });
}

/** The case and its ETag (the version an answer must match). */
export async function getCase(id: string): Promise<{ case: Case; etag: string }> {
  const response = await request(`/cases/${id}`);
  const body = (await response.json()) as Case;
  return { case: body, etag: response.headers.get('ETag') ?? `"${body.version}"` };
}

export function answerCase(id: string, answer: Answer, etag: string): Promise<Case> {
  return requestJson(`/cases/${id}/answer`, { method: 'POST', json: answer, headers: { 'If-Match': etag } });
}

export function closeCase(id: string, etag: string): Promise<Case> {
  return requestJson(`/cases/${id}/close`, { method: 'POST', headers: { 'If-Match': etag } });
}

export function listQueue(cursor?: string | null): Promise<Schemas['Page_QueueItem_']> {
  return requestJson('/queue', { query: { cursor, limit: 50 } });
}

export function claimCase(id: string): Promise<Case> {
  return requestJson(`/queue/${id}/claim`, { method: 'POST' });
}

export function releaseCase(id: string): Promise<Case> {
  return requestJson(`/queue/${id}/release`, { method: 'POST' });
}

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(binary);
}

async function dataUri(path: string, fallbackType: string): Promise<string> {
  const response = await request(path, { headers: { Accept: 'image/*' } });
  const type = response.headers.get('Content-Type') ?? fallbackType;
  return `data:${type};base64,${bytesToBase64(new Uint8Array(await response.arrayBuffer()))}`;
}

/** An image of a case as a data: URI (the endpoint needs the bearer token, which <Image> cannot send on web). */
export function imageDataUri(caseId: string, imageId: string): Promise<string> {
  return dataUri(`/cases/${caseId}/images/${imageId}`, 'image/jpeg');
}

/** An image's heatmap (PNG) as a data: URI: where the model looked, not a diagnosis. */
export function heatmapDataUri(caseId: string, imageId: string): Promise<string> {
  return dataUri(`/cases/${caseId}/images/${imageId}/heatmap`, 'image/png');
}
