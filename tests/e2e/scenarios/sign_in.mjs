// Every role signs in through the sign-in screen (the admin with an authenticator code) and lands on
// its own home; nothing clinical is shown before sign-in.
import { DESKTOP, PHONE, assertNoPageErrors, newPage, scenario, shot, signIn } from '../lib.mjs';

const HOME = { clinician: 'patients-screen', dermatologist: 'queue-screen', admin: 'admin-home' };

await scenario(async (browser) => {
  const seen = {};
  for (const [role, viewport] of [['clinician', PHONE], ['dermatologist', DESKTOP], ['admin', DESKTOP]]) {
    const { context, page } = await newPage(browser, viewport);
    await signIn(page, role, { shots: role === 'clinician' ? 'sign-in' : undefined });
    await page.getByTestId(HOME[role]).waitFor();
    seen[role] = new URL(page.url()).pathname;
    assertNoPageErrors(page);
    await context.close();
  }
  const { context, page } = await newPage(browser, DESKTOP);
  await page.goto('/');
  await page.getByTestId('sign-in-screen').waitFor();
  await shot(page, 'sign-in');
  await context.close();
  return { homes: seen };
});
