/**
 * Case drafts in progress, per patient, kept in memory while the app runs: leaving the screen, or a
 * session that ends mid-form, does not lose the photos and the clinical context already entered.
 */
import { randomUUID } from 'expo-crypto';

import type { Schemas } from '../api/client-types';
import type { PreparedImage } from '../images/prepare';

export type Draft = {
  idempotencyKey: string;
  images: PreparedImage[];
  age: string;
  sex: Schemas['CaseCreate']['sex'];
  site: NonNullable<Schemas['CaseCreate']['site']>;
  history: Required<NonNullable<Schemas['CaseCreate']['history']>>;
  concern: NonNullable<Schemas['CaseCreate']['concern']>;
  wantsSpecialist: boolean;
  notes: string;
  /** A follow-up photo of this tracked lesion; null for a new lesion. */
  lesionId: string | null;
};

const drafts = new Map<string, Draft>();

/** A fresh Idempotency-Key: one per draft, reused by every retry of that draft. */
export function newIdempotencyKey(): string {
  let key: unknown;
  try {
    key = randomUUID();
  } catch {
    key = undefined;
  }
  if (typeof key === 'string' && key.length >= 8) return key;
  return globalThis.crypto.randomUUID();
}

export function newDraft(): Draft {
  return {
    idempotencyKey: newIdempotencyKey(),
    images: [],
    age: '',
    sex: 'unknown',
    site: 'unknown',
    history: { new: false, changed: false, bleeding: false, itching: false },
    concern: 'low',
    wantsSpecialist: false,
    notes: '',
    lesionId: null,
  };
}

export function draftFor(patientId: string): Draft {
  let draft = drafts.get(patientId);
  if (!draft) {
    draft = newDraft();
    drafts.set(patientId, draft);
  }
  return draft;
}

export function saveDraft(patientId: string, draft: Draft): void {
  drafts.set(patientId, draft);
}

export function clearDraft(patientId: string): void {
  drafts.delete(patientId);
}

/** On an explicit sign-out the next person must not find this one's photos (a lost session keeps them). */
export function clearAllDrafts(): void {
  drafts.clear();
}
