// The whole walk: the clinician (phone size) signs in, registers a patient, records consent with a
// signature drawn on the screen, uploads a real HAM10000 photo and sees the AI result; the
// dermatologist (desktop) claims and answers it; the clinician sees the answer; the admin (TOTP) finds
// the patient's trail in the audit search and exports it as CSV.
// The web build keeps tokens in memory only, so the walk moves inside the app (no page reloads).
import { readFileSync } from 'node:fs';

import { DESKTOP, PHONE, WAIT, assertNoPageErrors, config, newPage, scenario, shot, shotOf, signIn } from '../lib.mjs';
import { drawSignature, prepareCase, registerPatient } from '../steps.mjs';

await scenario(async (browser) => {
  // -- clinician: patient, consent, case ---------------------------------------------------------
  const clinician = await newPage(browser, PHONE);
  let page = clinician.page;
  await signIn(page, 'clinician', { shots: 'sign-in' });
  await page.getByTestId('patients-screen').waitFor();
  await shot(page, 'patients');
  const patientId = await registerPatient(page, 'Grace Hopper', config.mrn);
  await shot(page, 'patient');

  await page.getByTestId('nav-consent').click();
  await page.getByTestId('consent-text').waitFor();
  await drawSignature(page);
  await page.getByTestId('consent-submit').click();
  await page.getByTestId('active-ai_analysis').waitFor();
  await page.getByTestId('active-specialist_sharing').waitFor();
  await shot(page, 'consent');
  await page.getByRole('button', { name: 'Back to patient' }).click();
  await page.getByTestId('patient-screen').waitFor();

  await prepareCase(page, config.image);
  await page.getByTestId('case-specialist-yes').click();
  await shot(page, 'new-case');
  await page.getByTestId('case-submit').click();
  await page.getByTestId('case-result-screen').waitFor();
  await page.getByTestId('ai-result').waitFor({ timeout: 3 * WAIT });
  await page.getByTestId('ai-disclaimer').waitFor();
  await page.getByTestId('triage-level').waitFor();
  const caseId = new URL(page.url()).pathname.split('/').filter(Boolean).at(-1);
  const topLabel = (await page.getByTestId('ai-top-label').innerText()).trim();
  await shot(page, 'case-result');
  // the heatmap: fetched only when asked for, always with its label
  await page.getByTestId('heatmap-toggle').first().click();
  await page.getByTestId('heatmap-image').first().waitFor({ timeout: WAIT });
  await shotOf(page, 'heatmap', 'case-result-heatmap');
  assertNoPageErrors(page);
  await clinician.context.close();

  // -- dermatologist: claim and answer -------------------------------------------------------------
  const dermatologist = await newPage(browser, DESKTOP);
  page = dermatologist.page;
  await signIn(page, 'dermatologist');
  await page.getByTestId('queue-screen').waitFor();
  await page.getByTestId(`claim-${caseId}`).waitFor();
  await shot(page, 'queue');
  await page.getByTestId(`claim-${caseId}`).click();
  await page.getByTestId('review-screen').waitFor();
  await page.getByTestId('answer-form').waitFor();
  await page.getByTestId('case-photo').waitFor();
  await page.getByTestId('answer-diagnosis-nv').click();
  await page.getByTestId('answer-management-monitor').click();
  await page.getByTestId('answer-weeks').fill('12');
  await page.getByTestId('answer-note').fill('Benign-looking naevus. Photograph again in three months.');
  await shot(page, 'review');
  await page.getByTestId('answer-submit').click();
  await page.getByTestId('answer-card').waitFor();
  assertNoPageErrors(page);
  await dermatologist.context.close();

  // -- clinician, later: the answer has arrived ----------------------------------------------------
  const later = await newPage(browser, PHONE);
  page = later.page;
  await signIn(page, 'clinician');
  await page.getByTestId('nav-cases').click();
  await page.getByTestId('cases-screen').waitFor();
  await shot(page, 'cases');
  await page.getByTestId(`case-${caseId}`).click();
  await page.getByTestId('answer-card').waitFor();
  const answer = await page.getByTestId('answer-card').innerText();
  await shot(page, 'case-answered');
  assertNoPageErrors(page);
  await later.context.close();

  // -- admin: the audit trail of this patient, exported --------------------------------------------
  const admin = await newPage(browser, DESKTOP);
  page = admin.page;
  await signIn(page, 'admin', { codeShot: 'sign-in-code' });
  await page.getByTestId('admin-home').waitFor();
  await page.getByTestId('verify-badge').waitFor();
  await shot(page, 'admin-home');
  await page.getByTestId('nav-audit').click();
  await page.getByTestId('audit-screen').waitFor();
  await page.getByTestId('audit-patient').fill(patientId);
  await page.getByTestId('audit-search').click();
  await page.locator('[data-testid^="audit-event-"]').first().waitFor();
  const events = await page.locator('[data-testid^="audit-event-"]').allInnerTexts();
  await shot(page, 'audit');
  const download = page.waitForEvent('download');
  await page.getByTestId('audit-export').click();
  const csvPath = await (await download).path();
  const csv = readFileSync(csvPath, 'utf8');
  assertNoPageErrors(page);
  await admin.context.close();

  return { patientId, caseId, topLabel, answer, events, csv };
});
