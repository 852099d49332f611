import { requestJson } from './client';
import type { Schemas } from './client-types';

export type Patient = Schemas['PatientOut'];
export type PatientIdentity = Schemas['PatientIdentity'];

/** Find patients of your clinic by medical record number (the API searches by exact MRN). */
export function searchPatients(mrn: string): Promise<Patient[]> {
  return requestJson<Patient[]>('/patients', { query: { mrn } });
}

export function registerPatient(identity: PatientIdentity): Promise<Patient> {
  return requestJson<Patient>('/patients', { method: 'POST', json: identity });
}

export function getPatient(id: string): Promise<Patient> {
  return requestJson<Patient>(`/patients/${id}`);
}

export function breakGlass(id: string, reason: string): Promise<Patient> {
  const body: Schemas['ReasonBody'] = { reason };
  return requestJson<Patient>(`/patients/${id}/break-glass`, { method: 'POST', json: body });
}

export function erasePatient(id: string, body: Schemas['ErasureBody']): Promise<Schemas['ErasureOut']> {
  return requestJson(`/patients/${id}/erase`, { method: 'POST', json: body });
}
