/**
 * Single sign-on with the hospital's identity provider (docs/sso.md), web build only: the provider's
 * redirect and its state cookie need a real page navigation, and the backend sends the browser back to
 * `/#/sso?code=...` (or `?error=...`). The return is read once, at start-up, before the router moves
 * anything, and removed from the address bar at once so the one-time code is not kept in history.
 */
import { Platform } from 'react-native';

export type SsoReturn = { code: string | null; error: string | null; errorDescription: string | null };

/** Parse `#/sso?code=...` / `#/sso?error=...&error_description=...`; null for any other hash. */
export function parseSsoReturn(hash: string): SsoReturn | null {
  const match = /^#\/?sso(?:\?(.*))?$/.exec(hash);
  if (!match) return null;
  const params = new URLSearchParams(match[1] ?? '');
  return { code: params.get('code'), error: params.get('error'), errorDescription: params.get('error_description') };
}

let captured: SsoReturn | null | undefined;

/** Read the return from the address bar (once) and clear it there. */
export function captureSsoReturn(): void {
  if (captured !== undefined || Platform.OS !== 'web' || typeof window === 'undefined' || !window.location) return;
  captured = parseSsoReturn(window.location.hash);
  if (captured) window.history.replaceState(null, '', window.location.pathname + window.location.search);
}

/** The provider's answer, if the app was opened by the SSO return and it was not used yet. */
export function peekSsoReturn(): SsoReturn | null {
  captureSsoReturn();
  return captured ?? null;
}

/** Mark the return used: a second sign-in screen must not replay a one-time code. */
export function consumeSsoReturn(): void {
  captured = null;
}

/** Whether this build can do the SSO round trip (a browser page; not the phone app). */
export function ssoInThisApp(): boolean {
  return Platform.OS === 'web';
}

/** Leave the app for the provider's sign-in page. */
export function goToSsoLogin(loginUrl: string): void {
  window.location.assign(loginUrl);
}
