import { fireEvent, screen, waitFor } from '@testing-library/react-native';

import * as sso from '../auth/sso';
import { mockApi, renderApp, tokens, user } from '../test/api';

describe('SignIn', () => {
  it('signs a clinician in and opens the patients screen', async () => {
    const api = mockApi({
      'POST /auth/login': { body: tokens('clinician') },
      'GET /users/me': { body: user('clinician') },
    });
    await renderApp('/');
    fireEvent.changeText(await screen.findByTestId('email'), 'clinician@demo.dermalink.local');
    fireEvent.changeText(screen.getByTestId('password'), 'correct horse battery');
    fireEvent.press(screen.getByTestId('sign-in-submit'));
    expect(await screen.findByTestId('patients-screen')).toBeTruthy();
    expect(api.callsTo('POST', '/auth/login')[0].body).toEqual({
      email: 'clinician@demo.dermalink.local',
      password: 'correct horse battery',
      totp_code: null,
    });
  });

  it('asks for the authenticator code when the account has TOTP, then signs the admin in', async () => {
    const api = mockApi({
      'POST /auth/login': (call) =>
        (call.body as { totp_code: string | null }).totp_code
          ? { body: tokens('admin') }
          : { status: 401, body: { type: 'totp_required', detail: 'this account needs a TOTP code (field totp_code)' } },
      'GET /users/me': { body: user('admin') },
      'GET /audit/verify': { body: { ok: true, events: 12, findings: [] } },
    });
    await renderApp('/sign-in');
    fireEvent.changeText(await screen.findByTestId('email'), 'admin@demo.dermalink.local');
    fireEvent.changeText(screen.getByTestId('password'), 'admin password');
    fireEvent.press(screen.getByTestId('sign-in-submit'));
    fireEvent.changeText(await screen.findByTestId('totp-code'), '123456');
    fireEvent.press(screen.getByTestId('sign-in-submit'));
    expect(await screen.findByTestId('admin-home')).toBeTruthy();
    expect(api.callsTo('POST', '/auth/login')).toHaveLength(2);
  });

  it('shows a wrong password as a sentence, not as the API body', async () => {
    mockApi({ 'POST /auth/login': { status: 401, body: { type: 'invalid_credentials', detail: 'e-mail or password is wrong' } } });
    await renderApp('/sign-in');
    fireEvent.changeText(await screen.findByTestId('email'), 'x@y.org');
    fireEvent.changeText(screen.getByTestId('password'), 'nope');
    fireEvent.press(screen.getByTestId('sign-in-submit'));
    await waitFor(() => expect(screen.getByTestId('sign-in-error')).toHaveTextContent(/e-mail, password or authenticator code is not right/));
    expect(screen.queryByText(/invalid_credentials/)).toBeNull();
  });
});

describe('lost session', () => {
  it('returns to sign-in with an explanation when the refresh token is refused', async () => {
    mockApi({
      'GET /users/me': (call) =>
        call.headers.Authorization ? { body: user('clinician') } : { status: 401, body: { type: 'not_authenticated', detail: '' } },
      'GET /patients': { status: 401, body: { type: 'invalid_token', detail: 'session revoked' } },
      'POST /auth/refresh': { status: 401, body: { type: 'invalid_token', detail: 'refresh token is expired or revoked' } },
    });
    await renderApp('/clinician', 'clinician');
    fireEvent.changeText(await screen.findByTestId('patient-search-mrn'), 'MRN-1');
    fireEvent.press(screen.getByTestId('patient-search-submit'));
    expect(await screen.findByTestId('session-ended')).toHaveTextContent(/Cases you had not sent are kept/);
    expect(screen.queryByTestId('patients-screen')).toBeNull();
  });
});

describe('sign out', () => {
  it('ends the session on the server and returns to sign-in', async () => {
    const api = mockApi({
      'GET /users/me': { body: user('dermatologist') },
      'GET /queue': { body: { items: [], next_cursor: null } },
      'GET /cases': { body: { items: [], next_cursor: null } },
      'POST /auth/logout': { status: 204 },
    });
    await renderApp('/dermatologist', 'dermatologist');
    fireEvent.press(await screen.findByTestId('sign-out'));
    expect(await screen.findByTestId('sign-in-screen')).toBeTruthy();
    expect(api.callsTo('POST', '/auth/logout')).toHaveLength(1);
    expect(screen.queryByTestId('session-ended')).toBeNull();
  });
});

describe('SignIn, wrong authenticator code', () => {
  it('keeps the code step after a wrong code so the next code can be tried', async () => {
    mockApi({
      'POST /auth/login': (call) =>
        (call.body as { totp_code: string | null }).totp_code
          ? { status: 401, body: { type: 'invalid_credentials', detail: 'wrong code' } }
          : { status: 401, body: { type: 'totp_required', detail: 'this account needs a TOTP code (field totp_code)' } },
    });
    await renderApp('/');
    fireEvent.changeText(await screen.findByTestId('email'), 'admin@demo.dermalink.local');
    fireEvent.changeText(screen.getByTestId('password'), 'correct horse battery');
    fireEvent.press(screen.getByTestId('sign-in-submit'));
    fireEvent.changeText(await screen.findByTestId('totp-code'), '000000');
    fireEvent.press(screen.getByTestId('sign-in-submit'));
    expect(await screen.findByTestId('sign-in-error')).toHaveTextContent(/authenticator code is not right/);
    expect(screen.getByTestId('totp-code')).toBeTruthy();
  });
});

describe('SignIn with the hospital account (SSO, web build)', () => {
  // The browser's part (address bar, page navigation) is the only thing replaced besides fetch.
  const config = { enabled: true, password_login_enabled: true, display_name: 'your hospital account', login_url: '/api/v1/auth/oidc/login' };
  const CODE = 'one-time-code-0123456789abcdef';
  let go: jest.SpyInstance;
  beforeEach(() => {
    jest.spyOn(sso, 'ssoInThisApp').mockReturnValue(true);
    go = jest.spyOn(sso, 'goToSsoLogin').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  it('offers the hospital sign-in beside the password form and leaves for the login URL', async () => {
    jest.spyOn(sso, 'peekSsoReturn').mockReturnValue(null);
    mockApi({ 'GET /auth/oidc/config': { body: config } });
    await renderApp('/');
    fireEvent.press(await screen.findByTestId('sso-sign-in'));
    expect(screen.getByTestId('sso-sign-in')).toHaveTextContent('Sign in with your hospital account');
    expect(go).toHaveBeenCalledWith('/api/v1/auth/oidc/login');
    expect(screen.getByTestId('password')).toBeTruthy();
  });

  it('hides the password form when password sign-in is off', async () => {
    jest.spyOn(sso, 'peekSsoReturn').mockReturnValue(null);
    mockApi({ 'GET /auth/oidc/config': { body: { ...config, password_login_enabled: false } } });
    await renderApp('/');
    expect(await screen.findByTestId('sso-sign-in')).toBeTruthy();
    expect(screen.queryByTestId('password')).toBeNull();
    expect(screen.queryByTestId('sign-in-submit')).toBeNull();
  });

  it('exchanges the returned code, asks an admin for the TOTP code, and signs in', async () => {
    jest.spyOn(sso, 'peekSsoReturn').mockReturnValue({ code: CODE, error: null, errorDescription: null });
    const api = mockApi({
      'GET /auth/oidc/config': { body: config },
      'POST /auth/oidc/exchange': (call) =>
        (call.body as { totp_code: string | null }).totp_code
          ? { body: tokens('admin') }
          : { status: 401, body: { type: 'totp_required', detail: 'this account needs a TOTP code (field totp_code)' } },
      'GET /users/me': { body: user('admin') },
      'GET /audit/verify': { body: { ok: true, events: 12, findings: [] } },
    });
    await renderApp('/');
    fireEvent.changeText(await screen.findByTestId('totp-code'), '492039');
    fireEvent.press(screen.getByTestId('sign-in-submit'));
    expect(await screen.findByTestId('admin-home')).toBeTruthy();
    expect(api.callsTo('POST', '/auth/oidc/exchange').map((c) => c.body)).toEqual([
      { code: CODE, totp_code: null },
      { code: CODE, totp_code: '492039' },
    ]);
  });

  it('explains a refusal from the provider in plain words and offers to start again', async () => {
    jest.spyOn(sso, 'peekSsoReturn').mockReturnValue({ code: null, error: 'sso_refused', errorDescription: 'no role for this account' });
    const api = mockApi({ 'GET /auth/oidc/config': { body: config } });
    await renderApp('/');
    expect(await screen.findByTestId('sign-in-error')).toHaveTextContent(/Your hospital account could not sign you in to DermaLink/);
    expect(await screen.findByTestId('sso-sign-in')).toBeTruthy();
    expect(api.callsTo('POST', '/auth/oidc/exchange')).toHaveLength(0);
  });
});
