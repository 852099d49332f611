/**
 * The one place that talks HTTP to the DermaLink API: base URL, bearer token, transparent refresh of an
 * expired access token, and errors turned into `ApiError` (the API's `{type, detail}`) or `NetworkError`.
 */
import { Platform } from 'react-native';

import { clearTokens, currentTokens, saveTokens, type Tokens } from '../auth/tokenStore';

/** Same origin on the web build (the backend serves it); EXPO_PUBLIC_API_URL on phones. */
export const API_ROOT =
  Platform.OS === 'web' ? '' : (process.env.EXPO_PUBLIC_API_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
export const API_BASE = `${API_ROOT}/api/v1`;

export class ApiError extends Error {
  constructor(
    public status: number,
    public type: string,
    public detail: unknown,
    /** Seconds from a `Retry-After` header (throttling 429, lock-out 423, a busy server 503), if any. */
    public retryAfter: number | null = null,
  ) {
    super(typeof detail === 'string' ? detail : type);
    this.name = 'ApiError';
  }
}

/** No answer at all (offline, server down): the caller may queue the work and retry later. */
export class NetworkError extends Error {
  constructor(cause?: unknown) {
    super('network unreachable');
    this.name = 'NetworkError';
    this.cause = cause;
  }
}

type Listener = () => void;
const sessionLostListeners = new Set<Listener>();

/** Called when the refresh token is refused: the app returns to sign-in (unsent work is kept). */
export function onSessionLost(listener: Listener): () => void {
  sessionLostListeners.add(listener);
  return () => sessionLostListeners.delete(listener);
}

export type RequestOptions = {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  json?: unknown;
  form?: FormData;
  headers?: Record<string, string>;
  query?: Record<string, string | number | boolean | null | undefined>;
  auth?: boolean;
};

export function buildUrl(path: string, query?: RequestOptions['query']): string {
  const params = Object.entries(query ?? {})
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return `${API_BASE}${path}${params.length ? `?${params.join('&')}` : ''}`;
}

async function send(path: string, options: RequestOptions, tokens: Tokens | null): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }
  if (tokens && options.auth !== false) headers.Authorization = `Bearer ${tokens.access_token}`;
  try {
    return await fetch(buildUrl(path, options.query), { method: options.method ?? 'GET', headers, body });
  } catch (error) {
    throw new NetworkError(error);
  }
}

async function errorFrom(response: Response): Promise<ApiError> {
  let type = `http_${response.status}`;
  let detail: unknown = response.statusText;
  try {
    const body = (await response.json()) as { type?: string; detail?: unknown };
    if (body && typeof body.type === 'string') type = body.type;
    if (body && body.detail !== undefined) detail = body.detail;
  } catch {
    // not JSON (a proxy's error page): keep the status
  }
  const retry = Number(response.headers.get('Retry-After'));
  return new ApiError(response.status, type, detail, Number.isFinite(retry) && retry > 0 ? Math.round(retry) : null);
}

let refreshing: Promise<Tokens | null> | null = null;

/** Trade the refresh token for a new pair once, however many requests found the access token expired. */
export function refreshTokens(): Promise<Tokens | null> {
  const tokens = currentTokens();
  if (!tokens) return Promise.resolve(null);
  refreshing ??= (async () => {
    try {
      const response = await send('/auth/refresh', { method: 'POST', json: { refresh_token: tokens.refresh_token }, auth: false }, null);
      if (!response.ok) {
        if (response.status === 401 || response.status === 403) {
          await loseSession();
          return null;
        }
        throw await errorFrom(response);
      }
      const fresh = (await response.json()) as Tokens;
      await saveTokens(fresh);
      return fresh;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function loseSession(): Promise<void> {
  await clearTokens();
  sessionLostListeners.forEach((listener) => listener());
}

const EXPIRY_MARGIN_MS = 15_000;

function expired(tokens: Tokens): boolean {
  return Date.parse(tokens.access_expires_at) - EXPIRY_MARGIN_MS < Date.now();
}

/** A 401 about what was typed (a password or code asked again, e.g. for TOTP enrolment), not about the token: no refresh. */
async function isCredentialRefusal(response: Response): Promise<boolean> {
  try {
    const body = (await response.clone().json()) as { type?: string };
    return body?.type === 'invalid_credentials' || body?.type === 'totp_required';
  } catch {
    return false;
  }
}

/** Send a request; refresh the access token first when it is about to expire, or once after a 401. */
export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  let tokens = options.auth === false ? null : currentTokens();
  if (tokens && expired(tokens)) tokens = await refreshTokens();
  if (options.auth !== false && !tokens && currentTokens() === null && path !== '/auth/login') {
    // Signed out (or the session was just lost): never send a clinical request anonymously.
    throw new ApiError(401, 'session_expired', 'signed out');
  }
  let response = await send(path, options, tokens);
  if (response.status === 401 && tokens && !(await isCredentialRefusal(response))) {
    const fresh = await refreshTokens();
    if (!fresh) throw new ApiError(401, 'session_expired', 'the session has ended');
    response = await send(path, options, fresh);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function requestJson<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(path, options);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}
