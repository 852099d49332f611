// The offline path. (1) The browser loses its connection: the case is kept on the device (images
// included) and sent when the connection returns. (2) The connection drops after the server stored
// the case but before the answer arrived: the app keeps the case and retries with the same
// Idempotency-Key, and the server answers with the case it already has. The pytest side checks through
// the API that each submission made exactly one case.
import { PHONE, WAIT, assertNoPageErrors, config, newPage, scenario, shot, signIn } from '../lib.mjs';
import { prepareCase, registerPatient, verbalConsent } from '../steps.mjs';

// Screens of a stack stay mounted under the one on top: look inside the list of cases.
const banner = (page) => page.getByTestId('cases-screen').getByTestId('outbox-banner');

await scenario(async (browser) => {
  const { context, page } = await newPage(browser, PHONE);
  const posts = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/api/v1/cases') {
      posts.push(request.headers()['idempotency-key']);
    }
  });
  await signIn(page, 'clinician');
  const patientId = await registerPatient(page, 'Alan Turing', config.mrn);
  await verbalConsent(page);

  // (1) No connection at all.
  await prepareCase(page, config.image);
  await context.setOffline(true);
  await page.getByTestId('case-submit').click();
  await page.getByTestId('cases-screen').getByTestId('case-queued').waitFor();
  await banner(page).waitFor();
  await shot(page, 'offline-queued');
  await context.setOffline(false);
  await banner(page).waitFor({ state: 'detached', timeout: 3 * WAIT });
  const offlinePosts = posts.length;

  // (2) The request reaches the server; its answer is lost on the way back.
  await page.goBack();
  await page.getByTestId('patient-screen').waitFor();
  let lost = 0;
  await page.route('**/api/v1/cases', async (route) => {
    if (route.request().method() !== 'POST' || lost > 0) return route.fallback();
    lost += 1;
    await route.fetch(); // the server stores the case...
    await route.abort('internetdisconnected'); // ...and the app never hears back
  });
  await prepareCase(page, config.image);
  await page.getByTestId('case-submit').click();
  await page.getByTestId('cases-screen').getByTestId('case-queued').waitFor();
  // Sent from the outbox on the next attempt ("Send now", or the app's own timer).
  const sendNow = page.getByTestId('cases-screen').getByTestId('outbox-send-now');
  if (await sendNow.isVisible().catch(() => false)) await sendNow.click();
  await banner(page).waitFor({ state: 'detached', timeout: 3 * WAIT });
  assertNoPageErrors(page);
  await context.close();
  return { patientId, posts, offlinePosts, lost };
});
