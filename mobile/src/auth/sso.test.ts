import { parseSsoReturn } from './sso';

describe('parseSsoReturn', () => {
  it('reads the code, or the error and its description, from the #/sso return', () => {
    expect(parseSsoReturn('#/sso?code=abc123')).toEqual({ code: 'abc123', error: null, errorDescription: null });
    expect(parseSsoReturn('#/sso?error=sso_refused&error_description=no%20role')).toEqual({
      code: null,
      error: 'sso_refused',
      errorDescription: 'no role',
    });
  });

  it('ignores every other hash', () => {
    expect(parseSsoReturn('')).toBeNull();
    expect(parseSsoReturn('#/clinician')).toBeNull();
    expect(parseSsoReturn('#/ssox?code=1')).toBeNull();
  });
});
