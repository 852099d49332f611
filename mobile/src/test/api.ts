/**
 * Test support: the only thing the component tests replace is `fetch`, at the boundary. Routes answer
 * with realistic API bodies (typed by the generated schema); every call is recorded for assertions.
 */
import { renderRouter } from 'expo-router/testing-library';

import type { Schemas } from '../api/client-types';
import { saveTokens } from '../auth/tokenStore';

type Reply = { status?: number; body?: unknown; headers?: Record<string, string>; text?: string } | 'offline';
type Handler = Reply | ((call: Call) => Reply);
export type Call = { method: string; path: string; query: URLSearchParams; headers: Record<string, string>; body: unknown };

export function mockApi(routes: Record<string, Handler>) {
  const calls: Call[] = [];
  const fetchMock = jest.fn(async (input: string, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://localhost');
    const method = (init.method ?? 'GET').toUpperCase();
    const path = url.pathname.replace(/^\/api\/v1/, '');
    let body: unknown = init.body;
    if (typeof init.body === 'string') {
      try {
        body = JSON.parse(init.body);
      } catch {
        body = init.body;
      }
    }
    const call: Call = { method, path, query: url.searchParams, headers: (init.headers ?? {}) as Record<string, string>, body };
    calls.push(call);
    const key = Object.keys(routes).find((k) => {
      const [m, p] = k.split(' ');
      const pattern = new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`);
      return m === method && pattern.test(path);
    });
    if (!key) return new Response(JSON.stringify({ type: 'not_found', detail: `no mock for ${method} ${path}` }), { status: 404 });
    const handler = routes[key];
    const reply = typeof handler === 'function' ? handler(call) : handler;
    if (reply === 'offline') throw new TypeError('Network request failed');
    const status = reply.status ?? 200;
    const text = reply.text ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
    return new Response(status === 204 ? null : text, {
      status,
      headers: { 'Content-Type': reply.text ? 'text/plain' : 'application/json', ...reply.headers },
    });
  });
  global.fetch = fetchMock as unknown as typeof fetch;
  return { calls, fetchMock, callsTo: (method: string, path: string) => calls.filter((c) => c.method === method && c.path === path) };
}

const later = new Date(Date.now() + 15 * 60_000).toISOString();

export function tokens(role: Schemas['Role']): Schemas['TokenPair'] {
  return {
    access_token: `access-${role}`,
    token_type: 'bearer',
    access_expires_at: later,
    refresh_token: `refresh-${role}`,
    refresh_expires_at: later,
    role,
  };
}

export const CLINIC_ID = '5b0f7a52-64a0-4c38-9d0e-2f4a51c9e001';
export const PATIENT_ID = '0c6c3a1e-8a55-4d1e-a7f8-3a2b7f0d1a11';
export const CASE_ID = '7e1d2f4a-1f5b-4a7e-9a3c-6c5d4e3b2a10';
export const IMAGE_ID = 'b8a7c6d5-4e3f-4a1b-9c8d-7e6f5a4b3c21';
export const DOCUMENT_ID = 'd0c00000-1111-4222-8333-444455556666';

export function user(role: Schemas['Role'], extra: Partial<Schemas['UserOut']> = {}): Schemas['UserOut'] {
  const names = { clinician: 'Dr Amara Osei', dermatologist: 'Dr Lena Fischer', admin: 'Sam Patel' };
  return {
    id: `00000000-0000-4000-8000-00000000000${role.length}`,
    email: `${role}@demo.dermalink.local`,
    full_name: names[role],
    role,
    clinic_id: role === 'clinician' ? CLINIC_ID : null,
    is_active: true,
    totp_enabled: role === 'admin',
    locked_until: null,
    created_at: '2026-11-01T09:00:00Z',
    ...extra,
  };
}

export const patient: Schemas['PatientOut'] = {
  id: PATIENT_ID,
  clinic_id: CLINIC_ID,
  created_at: '2026-11-20T10:00:00Z',
  identity: { full_name: 'Maria Santos', date_of_birth: '1961-04-12', medical_record_number: 'MRN-20431', contact: null },
};

export const consentDocument: Schemas['DocumentOut'] = {
  id: DOCUMENT_ID,
  version: '1.0-demo',
  language: 'en',
  title: 'Teledermatology consent (demo template)',
  text: 'TEMPLATE — replace before real use. I agree that photos of my skin are analysed by software and shared with a dermatologist.',
  content_hash: 'a3f1c2',
  scopes: ['ai_analysis', 'specialist_sharing', 'research'],
  requires_reconsent: false,
  published_at: '2026-11-01T09:00:00Z',
  withdrawn_at: null,
};

export function consentStatus(active: Schemas['Scope'][]): Schemas['ConsentStatus'] {
  const all: Schemas['Scope'][] = ['ai_analysis', 'specialist_sharing', 'research'];
  return {
    patient_id: PATIENT_ID,
    scopes: all.map((scope) => ({
      scope,
      active: active.includes(scope),
      document_id: active.includes(scope) ? DOCUMENT_ID : null,
      document_version: active.includes(scope) ? '1.0-demo' : null,
      needs_reconsent: false,
    })),
    history: active.map((scope, i) => ({
      id: `e${i}`,
      scope,
      kind: 'granted',
      document_id: DOCUMENT_ID,
      method: 'verbal',
      witness_name: 'Nurse Kim',
      has_signature: false,
      reason: null,
      recorded_by: user('clinician').id,
      recorded_at: '2026-11-20T10:05:00Z',
    })),
  };
}

export function analysedCase(extra: Partial<Schemas['CaseOut']> = {}): Schemas['CaseOut'] {
  return {
    id: CASE_ID,
    patient_id: PATIENT_ID,
    state: 'awaiting_specialist',
    version: 3,
    age: 63,
    sex: 'female',
    site: 'back',
    history: { new: false, changed: true, bleeding: false, itching: false },
    concern: 'medium',
    wants_specialist: false,
    notes: 'Grew over the summer.',
    images: [{ id: IMAGE_ID, width: 600, height: 450, quality_ok: true, quality: { reasons: [] } }],
    analysis: {
      status: 'done',
      attempts: 1,
      last_error: null,
      next_attempt_at: null,
      results: [
        {
          image_id: IMAGE_ID,
          probabilities: { akiec: 0.02, bcc: 0.04, bkl: 0.08, df: 0.01, mel: 0.61, nv: 0.23, vasc: 0.01 },
          top_label: 'mel',
          top_probability: 0.61,
          malignant_probability: 0.67,
          model_name: 'dermalink_mobilenetv2',
          model_version: '3',
          inference_ms: 7.4,
        },
      ],
      disclaimer:
        "The AI result supports, and does not replace, a clinician's diagnosis. It was trained on dermoscopic images of 7 lesion types (HAM10000) and can be wrong.",
      heatmap_label: 'Where the model looked, not a diagnosis',
    },
    triage: { level: 'urgent', rule: 'malignant_probability', detail: { malignant_threshold: 0.3 }, sharing_consent_missing: false, message: null },
    claimed_by: null,
    claim_expires_at: null,
    answer: null,
    transitions: [{ from_state: null, to_state: 'received', actor_id: user('clinician').id, actor_role: 'clinician', at: '2026-11-20T10:10:00Z' }],
    created_at: '2026-11-20T10:10:00Z',
    updated_at: '2026-11-20T10:10:05Z',
    ...extra,
  };
}

export const LESION_ID = 'a1e51000-2222-4333-8444-555566667777';
export const BASELINE_CASE_ID = 'c0ffee00-1111-4222-8333-444455556666';

export function lesion(extra: Partial<Schemas['LesionOut']> = {}): Schemas['LesionOut'] {
  return {
    id: LESION_ID,
    patient_id: PATIENT_ID,
    site: 'back',
    label: 'left shoulder, upper',
    body_view: 'back',
    body_x: 0.38,
    body_y: 0.22,
    follow_up_due_at: '2026-12-04T10:00:00Z',
    created_at: '2026-08-14T09:30:00Z',
    ...extra,
  };
}

/** A measured change as the backend stores it (`Change.as_dict()` plus the API's disclaimer). */
export function measuredChange(extra: Partial<Schemas['LesionChangeOut']> = {}): Schemas['LesionChangeOut'] {
  return {
    lesion_id: LESION_ID,
    baseline_case_id: BASELINE_CASE_ID,
    followup_case_id: CASE_ID,
    status: 'measured',
    reason: null,
    measurements: {
      area_ratio: 1.4412,
      diameter_change: 0.2013,
      irregularity_change: 0.041,
      asymmetry_change: 0.012,
      colour_delta_e: 4.36,
      colour_count_change: 0,
      change_score: 1.64,
      significant: ['area_ratio', 'diameter_change'],
    },
    probability_change: { mel: 0.12 },
    created_at: '2026-11-20T10:10:04Z',
    disclaimer:
      'Measured from two photos; other light, angle or distance can move every number. A change worth a specialist\'s look, not a diagnosis.',
    ...extra,
  };
}

/** Render the real app (its routes under src/app) at `url`, signed in as `role` when given. */
export async function renderApp(url: string, role?: Schemas['Role']) {
  if (role) await saveTokens(tokens(role));
  return renderRouter('./src/app', { initialUrl: url });
}
