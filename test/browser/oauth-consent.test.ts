import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Session } from '@latchkey/client';
import { decryptScopedKeys, deriveFxaScopedKey, fromBase64Url, fromHex, type ScopedKeyJwk } from '@latchkey/core';
import { addOauthClient, addOauthScope, connect, openStore } from '@latchkey/server';
import * as oauth from 'oauth4webapi';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import { type App, authorizationUrl, redeemCode, refreshWith, startApp } from '../support/oauth.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';
import { alertWith, buildWebApp, launchChromium, openTab, section, type Tab, type WebApp } from './harness.js';

/** How long one UI step may take (an OPAQUE round with test key stretching is well under a second). */
const STEP_MS = 20_000;
const CLIENT_ID = 'web-notes';
const CLIENT_NAME = 'Web Notes';
const KB_SCOPE = 'https://identity.example.org/apps/web-notes';
const KA_SCOPE = 'https://identity.example.org/apps/web-notes-archive';
const EMAIL = 'consent-web@example.com';
const PASSWORD = 'consent web password';
/** Where the test leaves pictures of the consent page and of the granted apps, to look at. */
const CONSENT_SCREENSHOT = '/tmp/latchkey-consent.png';
const CONSENT_LOGIN_SCREENSHOT = '/tmp/latchkey-consent-login.png';
const GRANTS_SCREENSHOT = '/tmp/latchkey-granted-apps.png';

/**
 * Issue 9's consent page in Chromium: an app (its callback a tiny HTTP server on another port of
 * 127.0.0.1) sends the browser to the authorization URL; the web app's consent page logs the user in,
 * shows the app and its key-bearing scopes, and on Allow derives the keys in the page and encrypts
 * them to the app's keys_jwk. The test, as the app, redeems the code and decrypts exactly the keys core
 * derives from the account's kB and kA. Deny sends access_denied; the account screen lists the app and
 * Revoke ends its refresh token.
 */
describe('the consent page in Chromium', () => {
  let server: TestServer;
  let browser: Browser;
  let webDir: string;
  let callbacks: Server;
  let redirectUri: string;
  /** The account's keys as the SDK derives them in Node, from the password the test knows. */
  let node: Session;

  beforeAll(async () => {
    webDir = await buildWebApp();
    const port = await freePort();
    server = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, webDir });
    // The app's own origin: any page will do, the test reads the code from the URL the browser reaches.
    callbacks = createServer((_request, response) => response.end('the app'));
    await new Promise<void>((resolve) => callbacks.listen(0, '127.0.0.1', resolve));
    redirectUri = `http://127.0.0.1:${(callbacks.address() as AddressInfo).port}/callback`;
    const store = await openStore(connect(server.config.databaseUrl));
    try {
      const now = Date.now();
      await addOauthClient(store, { id: CLIENT_ID, name: CLIENT_NAME, redirectUris: [redirectUri] }, now);
      await addOauthScope(store, { scope: KB_SCOPE, keyClass: 'kB', clients: [CLIENT_ID] }, now);
      await addOauthScope(store, { scope: KA_SCOPE, keyClass: 'kA', clients: [CLIENT_ID] }, now);
    } finally {
      await store.close();
    }
    const { client } = await createVerifiedAccount(server, EMAIL, PASSWORD);
    node = await client.logIn(EMAIL, PASSWORD);
    browser = await launchChromium();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await new Promise((resolve) => callbacks?.close(resolve));
    if (webDir !== undefined) rmSync(webDir, { recursive: true, force: true });
  });

  const web = (): WebApp => ({ server, browser, webDir });

  /**
   * A fresh browser profile (no session) that an app has just sent to its authorization URL; it
   * records every Content-Security-Policy violation its pages report (see {@link violations}).
   */
  async function authorizeIn(scope: string): Promise<{ app: App; tab: Tab }> {
    const app = await startApp(server.url, CLIENT_ID, redirectUri);
    const url = await authorizationUrl(app, scope, { keys_jwk: app.keysJwk, prompt: 'consent' });
    const tab = await openTab(web(), 'login', { stepMs: STEP_MS, viewport: { width: 1000, height: 900 } });
    await tab.context.addInitScript(() => {
      const seen: string[] = [];
      Object.assign(window, { __violations: seen });
      document.addEventListener('securitypolicyviolation', (event) => seen.push(event.effectiveDirective));
    });
    await tab.page.goto(url.href);
    await tab.page.waitForURL(/#\/oauth\/consent\/[A-Za-z0-9_-]+$/);
    return { app, tab };
  }

  /** The CSP violations the consent page has reported so far. */
  function violations(page: Page): Promise<string[]> {
    return page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
  }

  async function logInOnConsentPage(page: Page, password = PASSWORD): Promise<void> {
    await page.getByLabel('Email', { exact: true }).fill(EMAIL);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Log in and continue' }).click();
  }

  /** Waits for the browser to reach the app's callback; returns that URL. */
  async function arrivedAtApp(page: Page): Promise<URL> {
    await page.waitForURL((url) => url.href.startsWith(redirectUri));
    return new URL(page.url());
  }

  /** The key core derives for `scope` of the account from `inputKey`, with the server's rotation data. */
  async function expectedKey(scope: string, inputKey: Uint8Array): Promise<ScopedKeyJwk> {
    const response = await fetch(`${server.url}/v1/oauth/key-data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${node.state.token}` },
      body: JSON.stringify({ client_id: CLIENT_ID, scope }),
    });
    const data = (await response.json()) as Record<string, { keyRotationSecret: string; keyRotationTimestamp: number }>;
    const entry = data[scope];
    if (entry === undefined) throw new Error(`no key data for ${scope}: ${JSON.stringify(data)}`);
    return deriveFxaScopedKey({
      inputKey,
      uid: fromBase64Url(node.accountId),
      identifier: scope,
      keyRotationSecret: fromHex(entry.keyRotationSecret),
      keyRotationTimestamp: entry.keyRotationTimestamp,
    });
  }

  it('logs in, shows the app and its key scopes, and on Allow hands the app exactly its keys', async () => {
    const { app, tab } = await authorizeIn(`openid offline_access ${KB_SCOPE} ${KA_SCOPE}`);
    const { page } = tab;
    // No session in this profile: the log-in comes first, on the same page, naming the app.
    await expect
      .poll(() => page.getByRole('heading', { name: `Log in to continue to ${CLIENT_NAME}` }).count())
      .toBe(1);
    // The keyboard is already in the first field.
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('email');
    await page.screenshot({ path: CONSENT_LOGIN_SCREENSHOT, fullPage: true });
    await logInOnConsentPage(page);

    await page.getByRole('heading', { name: `Allow ${CLIENT_NAME}?` }).waitFor();
    const scopes = page.getByTestId('consent-scopes');
    expect(await scopes.locator(`[data-scope="${KB_SCOPE}"]`).textContent()).toContain('gets an encryption key');
    expect(await scopes.locator(`[data-scope="${KB_SCOPE}"]`).textContent()).not.toContain('survives');
    expect(await scopes.locator(`[data-scope="${KA_SCOPE}"]`).textContent()).toContain(
      'gets an encryption key (survives password reset)',
    );
    expect(await scopes.locator('[data-scope="openid"]').textContent()).not.toContain('encryption key');
    // The page's requests, to show what left it: only the consent POST may carry keys, and only encrypted.
    await page.screenshot({ path: CONSENT_SCREENSHOT, fullPage: true });
    // The page worked under the app's CSP: Preact needs no inline script or style.
    expect(await violations(page)).toEqual([]);
    const posted: string[] = [];
    page.on('request', (request) => posted.push(request.postData() ?? ''));
    await page.getByRole('button', { name: 'Allow', exact: true }).click();

    const callback = await arrivedAtApp(page);
    const params = oauth.validateAuthResponse(app.as, app.client, callback, app.state);
    const tokens = await oauth.processAuthorizationCodeResponse(app.as, app.client, await redeemCode(app, params));
    const bundle = await decryptScopedKeys(tokens.keys_jwe as string, app.keyPair.privateKey, [KB_SCOPE, KA_SCOPE]);
    const kB = await expectedKey(KB_SCOPE, node.kB);
    const kA = await expectedKey(KA_SCOPE, node.kA);
    expect(bundle[KB_SCOPE]).toEqual(kB);
    expect(bundle[KA_SCOPE]).toEqual(kA);
    for (const body of posted) {
      expect(body).not.toContain(kB.k);
      expect(body).not.toContain(kA.k);
    }
    expect(posted.filter((body) => body.includes('keys_jwe'))).toHaveLength(1);
    expect(tab.errors).toEqual([]);

    // The account screen lists the app; Revoke removes it, and the app's refresh token stops working.
    await page.goto(`${server.url}/#/account`);
    const granted = page.getByTestId('granted-app').filter({ hasText: CLIENT_NAME });
    await granted.waitFor();
    expect(await granted.textContent()).toContain(KB_SCOPE);
    await granted.screenshot({ path: GRANTS_SCREENSHOT });
    await page.getByRole('button', { name: `Revoke ${CLIENT_NAME}` }).click();
    await page.getByTestId('no-granted-apps').waitFor();
    const refresh = await refreshWith(app, tokens.refresh_token as string);
    expect(refresh.status).toBe(400);
    expect(((await refresh.json()) as { error: string }).error).toBe('invalid_grant');
    expect(tab.errors).toEqual([]);
    await tab.context.close();
  });

  it('sends access_denied to the app on Deny', async () => {
    const { app, tab } = await authorizeIn(`openid ${KB_SCOPE}`);
    await logInOnConsentPage(tab.page);
    await tab.page.getByRole('heading', { name: `Allow ${CLIENT_NAME}?` }).waitFor();
    await tab.page.getByRole('button', { name: 'Deny', exact: true }).click();
    const callback = await arrivedAtApp(tab.page);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(app.state);
    expect(callback.searchParams.get('code')).toBeNull();
    expect(tab.errors).toEqual([]);
    await tab.context.close();
  });

  it('lets the user refuse before logging in: Cancel sends access_denied too', async () => {
    const { app, tab } = await authorizeIn(`openid ${KB_SCOPE}`);
    await tab.page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const callback = await arrivedAtApp(tab.page);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(app.state);
    expect(tab.errors).toEqual([]);
    await tab.context.close();
  });

  it('asks for the password again after a reload, on the same session, and shows a wrong one with its code', async () => {
    const { app, tab } = await authorizeIn(`openid ${KB_SCOPE}`);
    const { page } = tab;
    const tabSession = () =>
      page.evaluate(
        () => (JSON.parse(sessionStorage.getItem('latchkey.session') ?? '{}') as { sessionId?: string }).sessionId,
      );
    await logInOnConsentPage(page, 'not the password at all');
    expect(await alertWith(page, 'LK_LOGIN_FAILED')).not.toBe('');
    await logInOnConsentPage(page);
    await page.getByRole('heading', { name: `Allow ${CLIENT_NAME}?` }).waitFor();
    const first = await tabSession();
    const sessions = (await node.listSessions()).length;

    // A reload forgets the keys: the tab's session proves the password again (no second session).
    await page.reload();
    await page.getByRole('button', { name: 'Log in and continue' }).waitFor();
    expect(await page.getByLabel('Email', { exact: true }).inputValue()).toBe(EMAIL);
    await logInOnConsentPage(page);
    await page.getByRole('heading', { name: `Allow ${CLIENT_NAME}?` }).waitFor();
    expect(await tabSession()).toBe(first);
    expect((await node.listSessions()).length).toBe(sessions);

    // A tab whose session was revoked meanwhile cannot re-prove it: the page logs in afresh instead.
    await node.revokeSession(first as string);
    await page.reload();
    await logInOnConsentPage(page);
    await page.getByRole('heading', { name: `Allow ${CLIENT_NAME}?` }).waitFor();
    expect(await tabSession()).not.toBe(first);
    await page.getByRole('button', { name: 'Allow', exact: true }).click();
    const callback = await arrivedAtApp(page);
    expect(oauth.validateAuthResponse(app.as, app.client, callback, app.state).get('code')).toEqual(expect.any(String));
    expect(tab.errors).toEqual([]);
    await tab.context.close();
  });

  it('lists an app granted twice once, and shows a grant revoked elsewhere with its code', async () => {
    // Two consents to the same app, each in its own profile, then the list in the second.
    for (const last of [false, true]) {
      const { tab } = await authorizeIn(`openid ${KB_SCOPE}`);
      await logInOnConsentPage(tab.page);
      await tab.page.getByRole('button', { name: 'Allow', exact: true }).click();
      await arrivedAtApp(tab.page);
      if (!last) {
        await tab.context.close();
        continue;
      }
      const { page } = tab;
      await page.goto(`${server.url}/#/account`);
      const granted = page.getByTestId('granted-app').filter({ hasText: CLIENT_NAME });
      await granted.waitFor();
      expect(await granted.count()).toBe(1);
      // One of its grants revoked from another device (here the SDK in Node) while the list shows it.
      const grant = (await node.listOauthGrants()).find((g) => g.clientId === CLIENT_ID);
      await node.revokeOauthGrant(grant?.grantId as string);
      await page.getByRole('button', { name: `Revoke ${CLIENT_NAME}` }).click();
      const panel = section(page, 'Apps with access');
      expect(await alertWith(page, 'LK_OAUTH_GRANT_NOT_FOUND', panel)).not.toBe('');
      // The rest of the app's grants went too: nothing of it is left to list.
      await panel.getByTestId('no-granted-apps').waitFor();
      expect((await node.listOauthGrants()).filter((g) => g.clientId === CLIENT_ID)).toEqual([]);
      expect(tab.errors).toEqual([]);
      await tab.context.close();
    }
  });

  it('sends a session ended elsewhere from the granted apps back to the log-in, as the other panels do', async () => {
    const { tab } = await authorizeIn(`openid ${KB_SCOPE}`);
    const { page } = tab;
    await logInOnConsentPage(page);
    await page.getByRole('button', { name: 'Allow', exact: true }).click();
    await arrivedAtApp(page);
    await page.goto(`${server.url}/#/account`);
    await page.getByTestId('granted-app').filter({ hasText: CLIENT_NAME }).waitFor();
    // The tab's session is revoked from another device while the list shows the app.
    const sessionId = await page.evaluate(
      () => (JSON.parse(sessionStorage.getItem('latchkey.session') ?? '{}') as { sessionId?: string }).sessionId,
    );
    await node.revokeSession(sessionId as string);
    await page.getByRole('button', { name: `Revoke ${CLIENT_NAME}` }).click();
    // Not an error left in the panel of a dead session: the log-in, saying why at the top.
    await page.waitForURL(/#\/login$/);
    expect(await alertWith(page, 'LK_UNAUTHORIZED')).toBe('Your session has ended. Log in again.');
    expect(await page.locator('#alert [data-code="LK_UNAUTHORIZED"]').count()).toBe(1);
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('latchkey.session'))).toBeNull();
    // The grant itself was not touched: only the ended session was refused.
    expect((await node.listOauthGrants()).some((g) => g.clientId === CLIENT_ID)).toBe(true);
    expect(tab.errors).toEqual([]);
    await tab.context.close();
  });

  it('shows an unknown or expired request as an error, not a blank page', async () => {
    const tab = await openTab(web(), 'oauth/consent/no-such-request', {
      stepMs: STEP_MS,
      viewport: { width: 1000, height: 900 },
    });
    expect(await alertWith(tab.page, 'LK_OAUTH_INTERACTION_INVALID')).toMatch(/start it again from the app/);
    await tab.page.getByRole('heading', { name: 'This request cannot be shown' }).waitFor();
    expect(tab.errors).toEqual([]);
    await tab.context.close();
  });
});
