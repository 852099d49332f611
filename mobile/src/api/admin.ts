import { buildUrl, request, requestJson } from './client';
import type { Schemas } from './client-types';

export type User = Schemas['UserOut'];
export type Clinic = Schemas['ClinicOut'];
export type AuditEvent = Schemas['AuditEventOut'];
export type AuditFilters = { actor_id?: string; patient_id?: string; action?: string; outcome?: string; since?: string; until?: string };

export function listUsers(cursor?: string | null): Promise<Schemas['Page_UserOut_']> {
  return requestJson('/users', { query: { cursor, limit: 100 } });
}

export function createUser(body: Schemas['UserCreate']): Promise<User> {
  return requestJson('/users', { method: 'POST', json: body });
}

export function updateUser(id: string, body: Schemas['UserUpdate']): Promise<User> {
  return requestJson(`/users/${id}`, { method: 'PATCH', json: body });
}

export function unlockUser(id: string): Promise<User> {
  return requestJson(`/users/${id}/unlock`, { method: 'POST' });
}

export function listClinics(): Promise<Clinic[]> {
  return requestJson('/clinics');
}

export function createClinic(name: string): Promise<Clinic> {
  const body: Schemas['ClinicCreate'] = { name };
  return requestJson('/clinics', { method: 'POST', json: body });
}

export function searchAudit(filters: AuditFilters, cursor?: string | null, limit = 25): Promise<Schemas['Page_AuditEventOut_']> {
  return requestJson('/audit/events', { query: { ...filters, cursor, limit } });
}

/** The filtered audit trail as CSV text (fetched with the token; the screen saves or shares it). */
export async function exportAuditCsv(filters: AuditFilters): Promise<string> {
  const response = await request('/audit/events.csv', { query: { ...filters }, headers: { Accept: 'text/csv' } });
  return response.text();
}

export function auditCsvUrl(filters: AuditFilters): string {
  return buildUrl('/audit/events.csv', { ...filters });
}

export function verifyAudit(): Promise<Schemas['VerifyOut']> {
  return requestJson('/audit/verify');
}
