import { saveTokens, clearTokens } from '../auth/tokenStore';
import { requestJson } from './client';
import type { Schemas } from './client-types';

export type User = Schemas['UserOut'];

/** Sign in; throws ApiError `totp_required` when the account needs the authenticator code too. */
export async function login(email: string, password: string, totpCode?: string): Promise<Schemas['TokenPair']> {
  const body: Schemas['LoginRequest'] = { email, password, totp_code: totpCode || null };
  const tokens = await requestJson<Schemas['TokenPair']>('/auth/login', { method: 'POST', json: body, auth: false });
  await saveTokens(tokens);
  return tokens;
}

/** Whether single sign-on is on, and whether password sign-in still is (public). */
export function ssoConfig(): Promise<Schemas['SsoConfig']> {
  return requestJson('/auth/oidc/config', { auth: false });
}

/** Trade the one-time code from the SSO return for the same token pair a password sign-in gives. */
export async function exchangeSsoCode(code: string, totpCode?: string): Promise<Schemas['TokenPair']> {
  const body: Schemas['ExchangeRequest'] = { code, totp_code: totpCode || null };
  const tokens = await requestJson<Schemas['TokenPair']>('/auth/oidc/exchange', { method: 'POST', json: body, auth: false });
  await saveTokens(tokens);
  return tokens;
}

export async function logout(): Promise<void> {
  try {
    await requestJson<void>('/auth/logout', { method: 'POST' });
  } finally {
    await clearTokens();
  }
}

export function me(): Promise<User> {
  return requestJson<User>('/users/me');
}

/** Start enrolment: the password again (throttled like a sign-in); replacing an enrolled authenticator also needs its current code. */
export function beginTotpEnrolment(password: string, totpCode?: string): Promise<Schemas['TotpEnrolment']> {
  const body: Schemas['TotpEnrol'] = { password, totp_code: totpCode || null };
  return requestJson('/auth/totp/enrol', { method: 'POST', json: body });
}

export function confirmTotpEnrolment(code: string): Promise<void> {
  const body: Schemas['TotpConfirm'] = { code };
  return requestJson('/auth/totp/confirm', { method: 'POST', json: body });
}
