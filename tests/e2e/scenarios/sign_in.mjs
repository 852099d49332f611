// Every role signs in through the sign-in screen (the admin with an authenticator code) and lands on
// its own home; nothing clinical is shown before sign-in.
import { DESKTOP, PHONE, assertNoPageErrors, newPage, scenario, signIn } from '../lib.mjs';

const HOME = { clinician: 'patients-screen', dermatologist: 'queue-screen', admin: 'admin-home' };

await scenario(async (browser) => {
  const seen = {};
  for (const [role, viewport] of [['clinician', PHONE], ['dermatologist', DESKTOP], ['admin', DESKTOP]]) {
    const { context, page } = await newPage(browser, viewport);
    await signIn(page, role);
    await page.getByTestId(HOME[role]).waitFor();
    seen[role] = new URL(page.url()).pathname;
    assertNoPageErrors(page);
    await context.close();
  }
  // Nothing clinical before sign-in: a client route of a signed-in screen leads to sign-in instead.
  const { context, page } = await newPage(browser, PHONE);
  const apiCalls = [];
  page.on('request', (r) => new URL(r.url()).pathname.startsWith('/api/') && apiCalls.push(r.url()));
  await page.goto('/clinician/cases');
  await page.getByTestId('sign-in-screen').waitFor();
  const guarded = new URL(page.url()).pathname;
  const visible = await page.locator('body').innerText();
  await context.close();
  return { homes: seen, guarded, visible, apiCalls };
});
