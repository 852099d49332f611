import { saveTokens, currentTokens } from '../auth/tokenStore';
import { mockApi, tokens } from '../test/api';
import { ApiError, NetworkError, onSessionLost, requestJson } from './client';
import { describeError, fieldErrors, isConflict } from './errors';

describe('client', () => {
  it('says how long to wait when throttled (Retry-After) and names an erased patient', async () => {
    await saveTokens(tokens('clinician'));
    mockApi({
      'POST /auth/login': { status: 429, body: { type: 'too_many_requests', detail: 'slow down' }, headers: { 'Retry-After': '300' } },
      'GET /cases/{id}': { status: 410, body: { type: 'erased', detail: 'the patient was erased' } },
    });
    const throttled = await requestJson('/auth/login', { method: 'POST', json: {}, auth: false }).catch((e) => e);
    expect(throttled).toBeInstanceOf(ApiError);
    expect((throttled as ApiError).retryAfter).toBe(300);
    expect(describeError(throttled)).toBe('Too many attempts. Wait a moment and try again. You can try again in 5 minutes.');
    expect(describeError(await requestJson('/cases/x').catch((e) => e))).toBe("This patient's data has been erased.");
  });

  it('refreshes an expired access token transparently and retries once', async () => {
    await saveTokens({ ...tokens('clinician'), access_token: 'old', access_expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    const api = mockApi({
      'GET /users/me': (call) =>
        call.headers.Authorization === 'Bearer fresh'
          ? { body: { ok: true } }
          : { status: 401, body: { type: 'invalid_token', detail: 'access token expired' } },
      'POST /auth/refresh': { body: { ...tokens('clinician'), access_token: 'fresh' } },
    });
    await expect(requestJson('/users/me')).resolves.toEqual({ ok: true });
    expect(api.callsTo('POST', '/auth/refresh')[0].body).toEqual({ refresh_token: 'refresh-clinician' });
    expect(currentTokens()?.access_token).toBe('fresh');
  });

  it('refreshes before sending when the access token is already past its expiry, once for parallel calls', async () => {
    await saveTokens({ ...tokens('clinician'), access_expires_at: new Date(Date.now() - 1000).toISOString() });
    const api = mockApi({
      'GET /cases': { body: { items: [], next_cursor: null } },
      'POST /auth/refresh': { body: { ...tokens('clinician'), access_token: 'fresh' } },
    });
    await Promise.all([requestJson('/cases'), requestJson('/cases')]);
    expect(api.callsTo('POST', '/auth/refresh')).toHaveLength(1);
    expect(api.callsTo('GET', '/cases').every((c) => c.headers.Authorization === 'Bearer fresh')).toBe(true);
  });

  it('ends the session when the refresh token is refused, and tells the app', async () => {
    await saveTokens(tokens('clinician'));
    mockApi({
      'GET /users/me': { status: 401, body: { type: 'invalid_token', detail: 'revoked' } },
      'POST /auth/refresh': { status: 401, body: { type: 'invalid_token', detail: 'refresh token was already used' } },
    });
    const lost = jest.fn();
    const unsubscribe = onSessionLost(lost);
    await expect(requestJson('/users/me')).rejects.toMatchObject({ type: 'session_expired' });
    unsubscribe();
    expect(lost).toHaveBeenCalledTimes(1);
    expect(currentTokens()).toBeNull();
  });

  it('turns a dead network into NetworkError and API errors into ApiError', async () => {
    await saveTokens(tokens('clinician'));
    mockApi({ 'GET /patients': 'offline', 'GET /patients/{id}': { status: 404, body: { type: 'not_found', detail: 'patient x not found' } } });
    await expect(requestJson('/patients')).rejects.toBeInstanceOf(NetworkError);
    const error = await requestJson('/patients/x').catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, type: 'not_found' });
  });
});

describe('errors', () => {
  it('maps every API type to a sentence and never shows the raw body', () => {
    expect(describeError(new ApiError(409, 'consent_required', 'no consent for ai_analysis'))).toMatch(/Record their consent first/);
    expect(describeError(new ApiError(423, 'account_locked', { until: 'x' }))).toMatch(/locked/);
    expect(describeError(new ApiError(418, 'something_new', '{"raw": true}'))).toBe(
      'The request could not be processed. Check what you entered and try again.',
    );
    expect(describeError(new ApiError(502, 'http_502', 'Bad Gateway'))).toMatch(/Something went wrong on our side/);
    expect(describeError(new NetworkError())).toMatch(/No connection/);
  });

  it('reads field messages from a validation error and recognises conflicts', () => {
    const error = new ApiError(422, 'validation_error', [{ loc: ['body', 'metadata', 'age'], msg: 'Input should be less than or equal to 120' }]);
    expect(fieldErrors(error)).toEqual({ age: 'Input should be less than or equal to 120' });
    expect(isConflict(new ApiError(412, 'precondition_failed', ''))).toBe(true);
    expect(isConflict(new ApiError(409, 'consent_required', ''))).toBe(false);
  });
});
