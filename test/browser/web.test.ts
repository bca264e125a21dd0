import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { createVerifiedAccount } from '../support/server.js';
import { alertWith, logIn, openTab, section, statusLog, statusWith, useWebApp } from './harness.js';

const SCREENSHOT = '/tmp/latchkey-web.png';
const LOGIN_ERROR_SCREENSHOT = '/tmp/latchkey-web-login-error.png';
/** How long one UI step may take (an OPAQUE round with test key stretching is well under a second). */
const STEP_MS = 20_000;

const web = useWebApp();

/** A tab at `route`, in a context of its own: its own sessionStorage, so its own Latchkey session. */
const openTabAt = (route: string) => openTab(web, route, { stepMs: STEP_MS, viewport: { width: 1100, height: 900 } });

async function route(page: Page): Promise<string | null> {
  return page.locator('#screen').getAttribute('data-route');
}

/** Logs in and returns kB's fingerprint as the account screen shows it. */
async function logInForFingerprint(page: Page, email: string, password: string): Promise<string> {
  await logIn(page, email, password);
  return fingerprint(page);
}

async function fingerprint(page: Page): Promise<string> {
  const text = (await page.getByTestId('kb-fingerprint').textContent()) ?? '';
  expect(text).toMatch(/^[0-9a-f]{8}$/);
  return text;
}

/** Waits until the sessions list shows exactly `count` rows, after pressing Refresh unless told not to. */
async function sessionRows(page: Page, count: number, refresh = true): Promise<void> {
  if (refresh) await page.getByRole('button', { name: 'Refresh sessions' }).click();
  await page
    .getByTestId('session-row')
    .nth(count - 1)
    .waitFor();
  expect(await page.getByTestId('session-row').count()).toBe(count);
}

async function changePassword(page: Page, from: string, to: string): Promise<void> {
  await page.getByLabel('Current password').fill(from);
  await page.getByLabel('New password', { exact: true }).fill(to);
  await page.getByLabel('Confirm new password').fill(to);
  await page.getByRole('button', { name: 'Change password' }).click();
}

describe('the web app in Chromium', () => {
  it('signs up, verifies, logs in, changes the password keeping kB, and ends the other session', async () => {
    const email = 'web-signup@example.com';
    const first = 'correct horse battery';
    const second = 'staple battery horse correct';
    const a = await openTabAt('login');
    const b = await openTabAt('login');

    // Sign up through the UI; the code arrives by real SMTP.
    await a.page.getByRole('link', { name: 'Create an account' }).click();
    await a.page.getByLabel('Email', { exact: true }).fill(email);
    await a.page.getByLabel('Password', { exact: true }).fill(first);
    await a.page.getByLabel('Confirm password').fill(first);
    const mailsBefore = web.server.smtp.messages.length;
    await a.page.getByRole('button', { name: 'Create account' }).click();
    await statusWith(a.page, `We sent a code to ${email}`);
    // The progress showed in the sign-up panel itself, beside its button, not in a banner elsewhere.
    expect(
      (await statusLog(a.page)).some(
        ({ where, text }) => where === 'Create an account' && text.startsWith('Deriving keys…'),
      ),
    ).toBe(true);
    expect(await route(a.page)).toBe('verify');

    // Verify with the mailed code; the email carries over to the next screens.
    const code = await web.server.smtp.codeFor(email, { after: mailsBefore });
    expect(await a.page.getByLabel('Email', { exact: true }).inputValue()).toBe(email);
    await a.page.getByLabel('Verification code').fill(code);
    await a.page.getByRole('button', { name: 'Verify' }).click();
    await statusWith(a.page, 'Your email is verified');
    expect(await route(a.page)).toBe('login');

    // Log in: the account screen shows kB's fingerprint.
    const kB = await logInForFingerprint(a.page, email, first);
    expect(await route(a.page)).toBe('account');
    await a.page.getByText(email, { exact: true }).waitFor();

    // The key check is explained in plain words, with no jargon: the page never says "kB".
    await a.page.getByText('Account key check:').waitFor();
    await a.page.getByText('Compare this check on two devices').waitFor();
    expect((await a.page.locator('#screen').textContent()) ?? '').not.toMatch(/\bkB\b/);

    // A wrong password is refused in the log-in panel: a plain sentence, its stable code kept apart.
    await logIn(b.page, email, 'not the password at all');
    const loginPanel = section(b.page, 'Log in');
    expect(await alertWith(b.page, 'LK_LOGIN_FAILED', loginPanel)).toBe('Wrong email or password.');
    const refusal = loginPanel.locator('[data-code="LK_LOGIN_FAILED"]');
    expect(await refusal.textContent()).toMatch(/^Wrong email or password\.\s+Code for support: LK_LOGIN_FAILED$/);
    expect(await b.page.locator('#alert').isHidden()).toBe(true);
    await b.page.screenshot({ path: LOGIN_ERROR_SCREENSHOT });
    expect(await route(b.page)).toBe('login');

    // B names its device at log-in (the browser's own description is the default); A's list shows it.
    const deviceName = b.page.getByLabel('Name of this device');
    expect(await deviceName.inputValue()).toMatch(/^Chrome on Linux$/);
    await deviceName.fill('Kitchen laptop');
    expect(await logInForFingerprint(b.page, email, first)).toBe(kB);
    await sessionRows(a.page, 2);
    await a.page.getByText('This session').waitFor();
    const names = await a.page.getByTestId('session-row').locator('td:first-child').allTextContents();
    expect(names.sort()).toEqual(['Chrome on Linux', 'Kitchen laptop']);

    // Change the password on A: kB stays, B's session ends. The result shows in the form's own panel.
    await changePassword(a.page, first, second);
    const changed = 'Password changed; your account key stays the same. 1 other session was logged out.';
    await statusWith(a.page, changed, section(a.page, 'Change password'));
    expect(await a.page.locator('#status').isHidden()).toBe(true);
    expect(await fingerprint(a.page)).toBe(kB);
    await sessionRows(a.page, 1, false);
    await a.page.screenshot({ path: SCREENSHOT, fullPage: true });

    // B finds out on its next request and is sent back to the log-in screen.
    await b.page.getByRole('button', { name: 'Refresh sessions' }).click();
    expect(await alertWith(b.page, 'LK_UNAUTHORIZED')).toBe('Your session has ended. Log in again.');
    expect(await route(b.page)).toBe('login');

    // B's tab, logged out by the change, offers the name it was given at the next log-in.
    expect(await b.page.getByLabel('Name of this device').inputValue()).toBe('Kitchen laptop');

    // A reload keeps the session (token in sessionStorage) but not the keys: unlock brings kB back.
    const saved = await a.page.evaluate(() => sessionStorage.getItem('latchkey.session'));
    expect(Object.keys(JSON.parse(saved ?? '{}')).sort()).toEqual(
      ['accountId', 'deviceToken', 'email', 'expiresAt', 'keysChangedAt', 'sessionId', 'token'].sort(),
    );
    await a.page.reload();
    await a.page.getByLabel('Password to unlock keys').fill(second);
    await a.page.getByRole('button', { name: 'Unlock' }).click();
    expect(await fingerprint(a.page)).toBe(kB);

    // Log out; the old password no longer opens the account, the new one opens the same kB.
    await a.page.getByRole('button', { name: 'Log out' }).click();
    await statusWith(a.page, 'Logged out');
    expect(await a.page.evaluate(() => sessionStorage.getItem('latchkey.session'))).toBeNull();
    await logIn(a.page, email, first);
    await alertWith(a.page, 'LK_LOGIN_FAILED');
    expect(await logInForFingerprint(a.page, email, second)).toBe(kB);

    expect([...a.errors, ...b.errors]).toEqual([]);
    await a.context.close();
    await b.context.close();
  }, 180_000);

  it('revokes a session, resets the password with a new kB, and deletes the account', async () => {
    const email = 'web-reset@example.com';
    const password = 'original password 1';
    const reset = 'after the reset 2';
    await createVerifiedAccount(web.server, email, password);
    const a = await openTabAt('login');
    const b = await openTabAt('login');
    const kB = await logInForFingerprint(a.page, email, password);
    await logInForFingerprint(b.page, email, password);

    // Revoke B from A's sessions list.
    await sessionRows(a.page, 2);
    await a.page.getByRole('button', { name: /^Revoke / }).click();
    await a.page.getByTestId('session-row').nth(1).waitFor({ state: 'detached' });
    expect(await a.page.getByTestId('session-row').count()).toBe(1);
    await b.page.getByRole('button', { name: 'Refresh sessions' }).click();
    await alertWith(b.page, 'LK_UNAUTHORIZED');

    // Reset from the log-in screen with a mailed code: every session ends and kB is new.
    await b.page.getByRole('link', { name: 'Forgot your password?' }).click();
    await b.page.getByLabel('Email', { exact: true }).fill(email);
    const mailsBefore = web.server.smtp.messages.length;
    await b.page.getByRole('button', { name: 'Send reset code' }).click();
    const code = await web.server.smtp.codeFor(email, { after: mailsBefore });
    await b.page.getByLabel('Reset code').fill(code);
    await b.page.getByLabel('New password', { exact: true }).fill(reset);
    await b.page.getByLabel('Confirm new password').fill(reset);
    await b.page.getByRole('button', { name: 'Reset password' }).click();
    await statusWith(b.page, 'Your password is reset');
    const newKB = await logInForFingerprint(b.page, email, reset);
    expect(newKB).not.toBe(kB);
    await a.page.getByRole('button', { name: 'Refresh sessions' }).click();
    await alertWith(a.page, 'LK_UNAUTHORIZED');

    // Delete the account (after a password check); the email then logs in to nothing.
    await b.page.getByLabel('Password to confirm deletion').fill('wrong password here');
    await b.page.getByRole('button', { name: 'Delete account permanently' }).click();
    await alertWith(b.page, 'LK_LOGIN_FAILED');
    await b.page.getByLabel('Password to confirm deletion').fill(reset);
    await b.page.getByRole('button', { name: 'Delete account permanently' }).click();
    await statusWith(b.page, 'Your account is deleted');
    expect(await route(b.page)).toBe('signup');
    await b.page.getByRole('link', { name: 'Log in' }).click();
    await logIn(b.page, email, reset);
    await alertWith(b.page, 'LK_LOGIN_FAILED');

    expect([...a.errors, ...b.errors]).toEqual([]);
    await a.context.close();
    await b.context.close();
  }, 180_000);

  it('shows its own icon in the tab, an SVG the build serves', async () => {
    const tab = await openTabAt('login');
    const icon = tab.page.locator('link[rel="icon"]');
    expect(await icon.getAttribute('type')).toBe('image/svg+xml');
    const href = await icon.evaluate((link: HTMLLinkElement) => link.href);
    const response = await tab.context.request.get(href);
    expect(response.status()).toBe(200);
    expect(response.headers()['content-type']).toMatch(/^image\/svg\+xml/);
    expect((await response.text()).trimStart()).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // Chromium itself loads it as an image: a broken file would have no size.
    const size = await tab.page.evaluate(async (url) => {
      const image = new Image();
      image.src = url;
      await image.decode();
      return [image.naturalWidth, image.naturalHeight];
    }, href);
    expect(size[0]).toBeGreaterThan(0);
    expect(size[1]).toBeGreaterThan(0);
    expect(tab.errors).toEqual([]);
    await tab.context.close();
  });
});
