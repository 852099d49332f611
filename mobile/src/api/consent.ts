import { requestJson } from './client';
import type { Schemas } from './client-types';

export type ConsentDocument = Schemas['DocumentOut'];
export type ConsentStatus = Schemas['ConsentStatus'];
export type Scope = Schemas['Scope'];

export const SCOPE_LABELS: Record<Scope, string> = {
  ai_analysis: 'AI analysis of the photos',
  specialist_sharing: 'Sharing with a dermatologist',
  research: 'De-identified use for research',
};

export function listConsentDocuments(): Promise<ConsentDocument[]> {
  return requestJson<ConsentDocument[]>('/consent-documents');
}

/** The newest published, not withdrawn document: the one a patient consents to today. */
export async function currentConsentDocument(): Promise<ConsentDocument | null> {
  const documents = (await listConsentDocuments()).filter((d) => !d.withdrawn_at);
  documents.sort((a, b) => Date.parse(b.published_at) - Date.parse(a.published_at));
  return documents[0] ?? null;
}

export function publishConsentDocument(body: Schemas['DocumentCreate']): Promise<ConsentDocument> {
  return requestJson('/consent-documents', { method: 'POST', json: body });
}

export function withdrawConsentDocument(id: string): Promise<ConsentDocument> {
  return requestJson(`/consent-documents/${id}/withdraw`, { method: 'POST' });
}

export function getConsent(patientId: string): Promise<ConsentStatus> {
  return requestJson(`/patients/${patientId}/consents`);
}

export function recordConsent(patientId: string, body: Schemas['ConsentCreate']): Promise<ConsentStatus> {
  return requestJson(`/patients/${patientId}/consents`, { method: 'POST', json: body });
}

export function withdrawConsent(patientId: string, scopes: Scope[], reason?: string): Promise<ConsentStatus> {
  const body: Schemas['ConsentWithdraw'] = { scopes, reason: reason || null };
  return requestJson(`/patients/${patientId}/consents/withdraw`, { method: 'POST', json: body });
}
