// Lesion tracking: the clinician photographs a lesion, then sends a follow-up photo of the same lesion
// (chosen on the new-case screen) and sees "Change since the last photo" on its result: the measures in
// words with the aligned pair, or the reason the photos could not be compared. The pytest side checks
// the case's lesion and its change through the API.
import { PHONE, WAIT, assertNoPageErrors, config, newPage, scenario, shot, signIn } from '../lib.mjs';
import { prepareCase, registerPatient, verbalConsent } from '../steps.mjs';

await scenario(async (browser) => {
  const { context, page } = await newPage(browser, PHONE);
  await signIn(page, 'clinician');
  const patientId = await registerPatient(page, 'Katherine Johnson', config.mrn);
  await verbalConsent(page);

  await prepareCase(page, config.image);
  await page.getByTestId('case-lesion-new').waitFor();
  await page.getByTestId('case-submit').click();
  await page.getByTestId('case-result-screen').waitFor();
  await page.getByTestId('ai-result').waitFor({ timeout: 3 * WAIT });
  const firstCaseId = new URL(page.url()).pathname.split('/').filter(Boolean).at(-1);

  // Back to the patient (browser history: no reload, the session stays) and a follow-up of that lesion.
  await page.goBack();
  await page.getByTestId('patient-screen').waitFor();
  await prepareCase(page, config.image);
  const followUp = page.locator('[data-testid^="case-lesion-"]:not([data-testid="case-lesion-new"])').first();
  await followUp.waitFor();
  const lesionId = (await followUp.getAttribute('data-testid')).replace('case-lesion-', '');
  await followUp.click();
  await shot(page, 'new-case-follow-up');
  await page.getByTestId('case-submit').click();
  await page.getByTestId('case-result-screen').waitFor();
  const caseId = new URL(page.url()).pathname.split('/').filter(Boolean).at(-1);
  const card = page.getByTestId('case-result-screen').getByTestId('lesion-change');
  await card.waitFor({ timeout: 4 * WAIT });
  const status = (await page.getByTestId('lesion-change-status').innerText()).trim();
  if (status !== 'Not compared') await page.getByTestId('change-image').waitFor({ timeout: 2 * WAIT });
  if (status !== 'Not compared') await page.getByTestId('change-image').scrollIntoViewIfNeeded();
  else await card.scrollIntoViewIfNeeded();
  await shot(page, 'case-follow-up-change');
  const text = await card.innerText();
  assertNoPageErrors(page);
  await context.close();
  return { patientId, firstCaseId, caseId, lesionId, status, text };
});
