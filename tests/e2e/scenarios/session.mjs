// An expired session. The server issues access tokens for one minute here: (1) after it has expired,
// the app refreshes it transparently and the clinician's next action just works. (2) When the refresh
// is refused too (the session was revoked), the app returns to sign-in, keeps the case that was being
// sent, and sends it once the clinician has signed in again.
import { PHONE, WAIT, assertNoPageErrors, config, newPage, scenario, shot, signIn } from '../lib.mjs';
import { prepareCase, registerPatient, verbalConsent } from '../steps.mjs';

await scenario(async (browser) => {
  const { context, page } = await newPage(browser, PHONE);
  const refreshes = [];
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/api/v1/auth/refresh') refreshes.push(response.status());
  });
  await signIn(page, 'clinician');
  const signedInAt = Date.now();
  const patientId = await registerPatient(page, 'Katherine Johnson', config.mrn);

  // (1) The access token's lifetime is the server's setting: waiting it out is the point of the test.
  await page.waitForTimeout(Math.max(0, signedInAt + config.accessTokenSeconds * 1000 + 2000 - Date.now()));
  await verbalConsent(page); // needs fresh tokens: the app refreshes them on its own
  const refreshedWhileWorking = refreshes.filter((s) => s === 200).length;

  // (2) The session is gone: the API refuses the token and the refresh token.
  await prepareCase(page, config.image);
  const refused = (route) =>
    route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ type: 'invalid_token', detail: 'session revoked' }) });
  await page.route('**/api/v1/auth/refresh', refused);
  await page.route('**/api/v1/cases', (route) => (route.request().method() === 'POST' ? refused(route) : route.fallback()));
  await page.getByTestId('case-submit').click();
  await page.getByTestId('sign-in-screen').waitFor();
  await page.getByTestId('session-ended').waitFor();
  await shot(page, 'session-ended');
  await page.unrouteAll({ behavior: 'wait' });

  // Signing in again sends the case that was kept on the device (at once: listen before signing in).
  const sent = page.waitForResponse(
    (r) => new URL(r.url()).pathname === '/api/v1/cases' && r.request().method() === 'POST' && r.status() < 300,
    { timeout: 3 * WAIT },
  );
  await signIn(page, 'clinician');
  await page.getByTestId('patients-screen').waitFor();
  await sent;
  assertNoPageErrors(page);
  await context.close();
  return { patientId, refreshedWhileWorking };
});
