import { LatchkeyClient, type Session } from '@latchkey/client';
import {
  decryptScopedKeys,
  deriveFxaScopedKey,
  FRESH_AUTH_MS,
  fromBase64Url,
  fromHex,
  type ScopedKeyJwk,
  toBase64Url,
  toHex,
} from '@latchkey/core';
import { addOauthScope, connect, openStore } from '@latchkey/server';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, databaseOn } from '../support/backends.js';
import { codeOf } from '../support/errors.js';
import { freePort } from '../support/free-port.js';
import {
  Browser,
  beginKeyAuthorization,
  followToApp,
  KEY_SCOPE,
  PLAIN_SCOPE,
  redeemCode,
  registerApps,
  startApp,
} from '../support/oauth.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/** A kA-class scope the notes app may also ask for: data that must outlive a password reset. */
const KA_SCOPE = 'https://identity.example.org/apps/notes-archive';
const EMAIL = 'consent-sdk@example.com';
const PASSWORD = 'consent sdk password';

/**
 * Issue 9, the consent page's SDK: `session.consentToAuthorization(uid)` derives the app's keys in the
 * caller (here Node, in the web app the browser) and posts only a keys_jwe; the app, playing itself
 * with oauth4webapi, decrypts exactly the keys core derives from the account's kB and kA. On SQLite
 * and PostgreSQL, since the rotation secrets the keys depend on live in the store.
 */
describe.each(BACKENDS)('the SDK consents for the consent page on %s', (backend) => {
  let server: TestServer;
  let clock = Date.now();
  /** Every request body the SDK sent, to prove nothing key-bearing left it in clear. */
  const sent: string[] = [];

  beforeAll(async () => {
    const port = await freePort();
    const database = await databaseOn(backend, 'oauth_consent_sdk');
    server = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, ...database }, { now: () => clock });
    await registerApps(server.config.databaseUrl);
    const store = await openStore(connect(server.config.databaseUrl));
    try {
      await addOauthScope(store, { scope: KA_SCOPE, keyClass: 'kA', clients: ['notes'] }, Date.now());
    } finally {
      await store.close();
    }
    await createVerifiedAccount(server, EMAIL, PASSWORD);
  });
  afterAll(async () => server?.close());

  /** The page's SDK in `browser`: same origin, so its requests carry the browser's interaction cookie. */
  function clientIn(browser: Browser): LatchkeyClient {
    return new LatchkeyClient({
      serverUrl: server.url,
      keyStretching: server.config.keyStretching,
      fetch: (url, init) => {
        sent.push(typeof init?.body === 'string' ? init.body : '');
        return browser.fetch(String(url), init);
      },
    });
  }

  /** The app starts an authorization for `scope` and the browser lands on the consent page with it. */
  async function pending(scope: string) {
    const app = await startApp(server.url);
    const browser = new Browser();
    const uid = await beginKeyAuthorization(browser, server.url, app, scope);
    return { app, browser, uid, client: clientIn(browser) };
  }

  /** The key-data the server holds for the account, read as the test (not through the SDK). */
  async function keyData(session: Session, scope: string) {
    const response = await fetch(`${server.url}/v1/oauth/key-data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${session.state.token}` },
      body: JSON.stringify({ client_id: 'notes', scope }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as Record<string, { keyRotationSecret: string; keyRotationTimestamp: number }>;
  }

  it('shows the app, its scopes and their key classes, and the keys_jwk to encrypt to', async () => {
    const { app, uid, client } = await pending(`openid ${KEY_SCOPE} ${KA_SCOPE} ${PLAIN_SCOPE}`);
    const session = await client.logIn(EMAIL, PASSWORD);
    const details = await session.oauthInteraction(uid);
    expect(details).toEqual({
      uid,
      client: { id: 'notes', name: 'Notes' },
      scopes: [
        { scope: 'openid', keyClass: null },
        { scope: KEY_SCOPE, keyClass: 'kB' },
        { scope: KA_SCOPE, keyClass: 'kA' },
        { scope: PLAIN_SCOPE, keyClass: null },
      ],
      keysRequested: true,
      keysJwk: app.keysJwk,
    });
    // The page shows the request before anyone logs in.
    expect(await client.oauthInteraction(uid)).toEqual(details);
  });

  it("encrypts to the app's keys_jwk exactly the keys core derives from kB and kA, and sends none in clear", async () => {
    const { app, browser, uid, client } = await pending(`openid ${KEY_SCOPE} ${KA_SCOPE}`);
    const session = await client.logIn(EMAIL, PASSWORD);
    sent.length = 0;
    const redirectTo = await session.consentToAuthorization(uid);

    const callback = await followToApp(browser, server.url, redirectTo);
    const params = oauth.validateAuthResponse(app.as, app.client, callback, app.state);
    const tokens = (await (await redeemCode(app, params)).json()) as { keys_jwe: string; access_token: string };
    const bundle = await decryptScopedKeys(tokens.keys_jwe, app.keyPair.privateKey, [KEY_SCOPE, KA_SCOPE]);

    const data = await keyData(session, `${KEY_SCOPE} ${KA_SCOPE}`);
    const info = await session.account();
    const uidBytes = fromBase64Url(session.accountId);
    const expected = (scope: string, inputKey: Uint8Array): ScopedKeyJwk =>
      deriveFxaScopedKey({
        inputKey,
        uid: uidBytes,
        identifier: scope,
        keyRotationSecret: fromHex(data[scope]?.keyRotationSecret ?? ''),
        keyRotationTimestamp: data[scope]?.keyRotationTimestamp ?? 0,
      });
    // kB-class keys turn with the account's keys; kA-class keys count from its creation.
    expect(data[KEY_SCOPE]?.keyRotationTimestamp).toBe(info.keysChangedAt);
    expect(data[KA_SCOPE]?.keyRotationTimestamp).toBe(info.createdAt);
    expect(bundle[KEY_SCOPE]).toEqual(expected(KEY_SCOPE, session.kB));
    expect(bundle[KA_SCOPE]).toEqual(expected(KA_SCOPE, session.kA));
    expect(bundle[KEY_SCOPE]?.k).not.toBe(bundle[KA_SCOPE]?.k);

    // What left the SDK: the consent POST carries the JWE and nothing else; no key in any form.
    expect(sent.filter((body) => body.includes('keys_jwe')).map((body) => Object.keys(JSON.parse(body)))).toEqual([
      ['keys_jwe'],
    ]);
    const secrets = [
      bundle[KEY_SCOPE]?.k,
      bundle[KA_SCOPE]?.k,
      toBase64Url(session.kB),
      toHex(session.kB),
      toBase64Url(session.kA),
      toHex(session.kA),
    ];
    for (const secret of secrets) for (const body of sent) expect(body).not.toContain(secret as string);
  });

  it('consents without keys for an app that asked for none', async () => {
    const app = await startApp(server.url);
    const browser = new Browser();
    const url = new URL(app.as.authorization_endpoint as string);
    for (const [name, value] of Object.entries({
      client_id: 'notes',
      redirect_uri: app.redirectUri,
      response_type: 'code',
      scope: `openid ${PLAIN_SCOPE}`,
      state: app.state,
      code_challenge: await oauth.calculatePKCECodeChallenge(app.codeVerifier),
      code_challenge_method: 'S256',
      prompt: 'consent',
    }))
      url.searchParams.set(name, value);
    const first = await browser.fetch(url.href);
    const uid = /\/v1\/oauth\/interaction\/([^/]+)$/.exec(first.headers.get('location') ?? '')?.[1] ?? '';
    const session = await clientIn(browser).logIn(EMAIL, PASSWORD);
    expect(await session.oauthInteraction(uid)).toMatchObject({ keysRequested: false });
    const callback = await followToApp(browser, server.url, await session.consentToAuthorization(uid));
    const params = oauth.validateAuthResponse(app.as, app.client, callback, app.state);
    const tokens = (await (await redeemCode(app, params)).json()) as Record<string, unknown>;
    expect(tokens.access_token).toEqual(expect.any(String));
    expect(tokens.keys_jwe).toBeUndefined();
  });

  it('refuses a stale session with LK_REAUTH_REQUIRED, and consents after a re-authentication', async () => {
    // Logged in long before the app asks (the request itself is new: interactions expire too).
    const browser = new Browser();
    const session = await clientIn(browser).logIn(EMAIL, PASSWORD);
    expect(session.isFresh()).toBe(true);
    clock += FRESH_AUTH_MS + 1000;
    try {
      const app = await startApp(server.url);
      const uid = await beginKeyAuthorization(browser, server.url, app, `openid ${KEY_SCOPE}`);
      expect(await codeOf(session.consentToAuthorization(uid))).toBe('LK_REAUTH_REQUIRED');
      await session.reauthenticate(PASSWORD);
      const callback = await followToApp(browser, server.url, await session.consentToAuthorization(uid));
      expect(oauth.validateAuthResponse(app.as, app.client, callback, app.state).get('code')).toEqual(
        expect.any(String),
      );
    } finally {
      clock = Date.now();
    }
  });

  it('refuses a session without its keys in memory with LK_NOT_LOGGED_IN, before anything is posted', async () => {
    const { app, browser, uid, client } = await pending(`openid ${KEY_SCOPE}`);
    const session = await client.logIn(EMAIL, PASSWORD);
    const resumed = client.resume(session.state);
    expect(resumed.isFresh()).toBe(false);
    expect(await codeOf(resumed.consentToAuthorization(uid))).toBe('LK_NOT_LOGGED_IN');
    // Nothing was spent: the session with its keys still grants the same request.
    const callback = await followToApp(browser, server.url, await session.consentToAuthorization(uid));
    expect(oauth.validateAuthResponse(app.as, app.client, callback, app.state).get('code')).toEqual(expect.any(String));
  });

  it('refuses for the user: the app gets access_denied, and the uid is spent', async () => {
    const { app, browser, uid, client } = await pending(`openid ${KEY_SCOPE}`);
    const callback = await followToApp(browser, server.url, await client.refuseAuthorization(uid));
    expect(callback.origin + callback.pathname).toBe(app.redirectUri);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(app.state);
    const session = await client.logIn(EMAIL, PASSWORD);
    expect(await codeOf(session.consentToAuthorization(uid))).toBe('LK_OAUTH_INTERACTION_INVALID');
  });

  it("answers LK_OAUTH_INTERACTION_INVALID for an unknown uid, or another browser's", async () => {
    const { uid } = await pending(`openid ${KEY_SCOPE}`);
    const stranger = clientIn(new Browser());
    expect(await codeOf(stranger.oauthInteraction('no-such-interaction'))).toBe('LK_OAUTH_INTERACTION_INVALID');
    expect(await codeOf(stranger.oauthInteraction(uid))).toBe('LK_OAUTH_INTERACTION_INVALID');
    const session = await stranger.logIn(EMAIL, PASSWORD);
    expect(await codeOf(session.consentToAuthorization(uid))).toBe('LK_OAUTH_INTERACTION_INVALID');
  });
});
