// Shared by the end-to-end scenarios: Debian's Chromium through playwright-core, sign-in, TOTP,
// screenshots. The pytest side (conftest.py) starts the real backend and passes everything in
// E2E_CONFIG (JSON): baseUrl, accounts {role: {email, password, totp_secret}}, chromium, screenshots,
// image, and the scenario's own values.
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

export const config = JSON.parse(process.env.E2E_CONFIG ?? '{}');
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };
// Generous ceilings for a slow, shared CI machine: every wait is on a condition, never a fixed sleep.
export const WAIT = 60_000;

// The flags Debian's Chromium needs headless in a container (see ../shared/NOTES.md).
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

const openPages = new Set();

export async function launch() {
  return chromium.launch({ executablePath: config.chromium, headless: true, args: FLAGS, timeout: 120_000 });
}

/** A fresh browser context (its own memory: tokens live only there on the web build) and one page. */
export async function newPage(browser, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, baseURL: config.baseUrl, acceptDownloads: true });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(WAIT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location()?.url ?? '';
    // Chromium logs every 4xx answer as an error; the app handles those (a TOTP step is a 401 first).
    if (message.text().startsWith('Failed to load resource')) return;
    problems.push(`console error: ${message.text()} ${where}`);
  });
  page.problems = problems;
  openPages.add(page);
  page.on('close', () => openPages.delete(page));
  return { context, page };
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s), the same codes as pyotp and authenticator apps. */
export function totp(secret, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return code.toString().padStart(6, '0');
}

/** Sign in through the sign-in screen as a demo account of `role`; waits for that role's home. */
export async function signIn(page, role, { shots, codeShot } = {}) {
  const account = config.accounts[role];
  await page.goto('/');
  await page.getByTestId('email').waitFor();
  if (shots) await shot(page, shots);
  await page.getByTestId('email').fill(account.email);
  await page.getByTestId('password').fill(account.password);
  await page.getByTestId('sign-in-submit').click();
  if (account.totp_secret) {
    await page.getByTestId('totp-code').waitFor();
    if (codeShot) await shot(page, codeShot);
    // A code can be used once (replay protection): take the next one if this step's was used already.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await page.getByTestId('totp-code').fill(totp(account.totp_secret));
      await page.getByTestId('sign-in-submit').click();
      const outcome = await Promise.race([
        page.getByTestId('totp-code').waitFor({ state: 'detached' }).then(() => 'in'),
        page.getByTestId('sign-in-error').waitFor().then(() => 'refused'),
      ]);
      if (outcome === 'in') break;
      await page.waitForTimeout(30_000 - (Date.now() % 30_000) + 500);
    }
  }
  await page.getByTestId('sign-in-screen').waitFor({ state: 'detached' });
}

/** Screenshots of the current screen at phone and desktop sizes (`<name>-phone.png`, `<name>-desktop.png`)
 * into the configured folder; the pytest side shrinks them to small palette PNGs. */
export async function shot(page, name) {
  if (!config.screenshots) return;
  mkdirSync(config.screenshots, { recursive: true });
  const original = page.viewportSize();
  // Each screen scrolls inside its own container: show every screen from its top.
  await page.evaluate(() => {
    for (const element of document.querySelectorAll('*')) if (element.scrollTop > 0) element.scrollTop = 0;
  });
  for (const [suffix, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    await page.setViewportSize(size);
    await page.waitForLoadState('networkidle').catch(() => {});
    // Two animation frames: the layout has settled at the new size before the capture.
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    await page.screenshot({ path: join(config.screenshots, `${name}-${suffix}.png`) });
  }
  await page.setViewportSize(original);
}

/** Like `shot`, but only the first element with this test id, scrolled into view (for a part of a screen
 * below the fold, such as a photo's heatmap). */
export async function shotOf(page, testId, name) {
  if (!config.screenshots) return;
  mkdirSync(config.screenshots, { recursive: true });
  const original = page.viewportSize();
  const element = page.getByTestId(testId).first();
  for (const [suffix, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    await page.setViewportSize(size);
    await page.waitForLoadState('networkidle').catch(() => {});
    await element.scrollIntoViewIfNeeded();
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    await element.screenshot({ path: join(config.screenshots, `${name}-${suffix}.png`) });
  }
  await page.setViewportSize(original);
}

/** Run `body(browser)`, print its result as the last line of JSON for the pytest side, always close. */
export async function scenario(body) {
  const browser = await launch();
  try {
    const result = await body(browser);
    console.log(JSON.stringify(result ?? {}));
  } catch (error) {
    // What the screen showed when it failed, for the person reading the test's output.
    let n = 0;
    for (const page of openPages) {
      n += 1;
      const path = join(config.debug ?? '.', `failure-${n}.png`);
      await page.screenshot({ path, fullPage: true }).catch(() => {});
      const text = await page.locator('body').innerText().catch(() => '');
      console.error(`--- page ${n}: ${page.url()} (screenshot ${path}) ---\n${text.slice(0, 3000)}`);
      if (page.problems.length) console.error(page.problems.join('\n'));
    }
    throw error;
  } finally {
    await browser.close();
  }
}

/** Fail the scenario when the page threw or logged an error (an uncaught exception is a bug). */
export function assertNoPageErrors(page, allow = []) {
  const left = page.problems.filter((p) => !allow.some((pattern) => pattern.test(p)));
  if (left.length) throw new Error(`the page reported errors:\n${left.join('\n')}`);
}
