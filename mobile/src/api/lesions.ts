import { bytesToBase64 } from './cases';
import { request, requestJson } from './client';
import type { Schemas } from './client-types';

export type Lesion = Schemas['LesionOut'];
export type DueLesion = Schemas['DueLesion'];
export type LesionChange = Schemas['LesionChangeOut'];

/** The patient's tracked lesions (a new case can be a follow-up photo of one of them). */
export function listLesions(patientId: string): Promise<Lesion[]> {
  return requestJson<Lesion[]>(`/patients/${patientId}/lesions`);
}

/** The clinic's lesions whose follow-up is due within `withinDays` days (overdue first). */
export function listDueLesions(withinDays = 14): Promise<DueLesion[]> {
  return requestJson<DueLesion[]>('/lesions/due', { query: { within_days: withinDays } });
}

/** The aligned previous and new photo side by side, as a data: URI (the endpoint needs the bearer token). */
export async function changeImageDataUri(lesionId: string, caseId: string): Promise<string> {
  const response = await request(`/lesions/${lesionId}/changes/${caseId}/image`, {
    query: { view: 'side_by_side' },
    headers: { Accept: 'image/*' },
  });
  const type = response.headers.get('Content-Type') ?? 'image/jpeg';
  return `data:${type};base64,${bytesToBase64(new Uint8Array(await response.arrayBuffer()))}`;
}
