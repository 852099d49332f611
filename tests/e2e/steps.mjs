// Steps of the clinician's work that several scenarios share.
import { WAIT } from './lib.mjs';

export async function drawSignature(page) {
  const pad = page.getByTestId('signature-pad');
  await pad.scrollIntoViewIfNeeded();
  const box = await pad.boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.15, y);
  await page.mouse.down();
  for (let i = 1; i <= 12; i += 1) {
    await page.mouse.move(box.x + box.width * (0.15 + i * 0.06), y + Math.sin(i) * box.height * 0.25, { steps: 3 });
  }
  await page.mouse.up();
}

/** From the patients screen: register a patient and land on their screen; returns the patient's id. */
export async function registerPatient(page, name, mrn) {
  await page.getByTestId('patients-screen').waitFor();
  await page.getByTestId('register-name').fill(name);
  await page.getByTestId('register-dob').fill('1956-12-09');
  await page.getByTestId('register-mrn').fill(mrn);
  await page.getByTestId('register-submit').click();
  await page.getByTestId('patient-screen').waitFor();
  await page.getByTestId('patient-name').getByText(name).waitFor();
  return new URL(page.url()).pathname.split('/').filter(Boolean).at(-1);
}

/** From the patient's screen: verbal consent with a named witness to every scope, then back. */
export async function verbalConsent(page) {
  await page.getByTestId('nav-consent').click();
  await page.getByTestId('consent-text').waitFor();
  await page.getByTestId('consent-method-verbal').click();
  await page.getByTestId('consent-witness').fill('Nurse Joy');
  await page.getByTestId('consent-submit').click();
  await page.getByTestId('active-ai_analysis').waitFor();
  await page.getByRole('button', { name: 'Back to patient' }).click();
  await page.getByTestId('patient-screen').waitFor();
}

/** From the patient's screen: a new case with the photo at `path` and some clinical context. */
export async function prepareCase(page, path) {
  await page.getByTestId('nav-new-case').click();
  await page.getByTestId('new-case-screen').waitFor();
  const chooser = page.waitForEvent('filechooser');
  await page.getByTestId('case-pick-library').click();
  await (await chooser).setFiles(path);
  await page.getByTestId('case-image-0').waitFor({ timeout: 2 * WAIT });
  await page.getByTestId('case-age').fill('61');
  await page.getByTestId('case-sex-female').click();
  await page.getByTestId('case-site-back').click();
}
