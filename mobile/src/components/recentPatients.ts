import type { Patient } from '../api/patients';

/** Patients opened in this session (memory only: nothing identifying is written to the device). */
const recent: Patient[] = [];

export function rememberPatient(patient: Patient): void {
  const i = recent.findIndex((p) => p.id === patient.id);
  if (i >= 0) recent.splice(i, 1);
  recent.unshift(patient);
  recent.splice(8);
}

export function recentPatients(): Patient[] {
  return [...recent];
}

export function forgetPatients(): void {
  recent.splice(0);
}
