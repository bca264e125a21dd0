import {
  type AuthorizationPending,
  finishAuthorization,
  LatchkeyError,
  refreshAuthorization,
  type Session,
  startAuthorization,
} from '@latchkey/client';
import {
  createKeysJwe,
  createKeysJwkPair,
  deriveScopedKey,
  encryptScopedKeys,
  fromBase64Url,
  parseScopedKeyData,
} from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import {
  Browser,
  beginAuthorization,
  consent,
  followToApp,
  KEY_SCOPE,
  REDIRECT,
  registerApps,
} from '../support/oauth.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * Issue 9, the app's side: the SDK's startAuthorization()/finishAuthorization() against the real
 * server, with the consent page played as test/support/oauth.ts does it (a real OPAQUE login, the
 * server's key-data, core's createKeysJwe). SQLite only: the SDK talks HTTP to oidc-provider and never
 * sees the database, whose OAuth storage oauth-flow.test.ts already runs on both backends.
 */
describe('the SDK relier', () => {
  let server: TestServer;
  let session: Session;

  beforeAll(async () => {
    const port = await freePort();
    server = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}` });
    await registerApps(server.config.databaseUrl);
    const { client } = await createVerifiedAccount(server, 'relier@example.com', 'relier password');
    session = await client.logIn('relier@example.com', 'relier password');
  });
  afterAll(async () => server?.close());

  const start = (issuer = `${server.url}/oauth`) =>
    startAuthorization({
      issuer,
      clientId: 'notes',
      redirectUri: REDIRECT,
      scopes: ['openid', KEY_SCOPE],
      keyScopes: [KEY_SCOPE],
      allowInsecureHttp: true,
    });

  async function keyData(scope: string): Promise<unknown> {
    const response = await fetch(`${server.url}/v1/oauth/key-data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${session.state.token}` },
      body: JSON.stringify({ client_id: 'notes', scope }),
    });
    expect(response.status).toBe(200);
    return response.json();
  }

  /** The keys the consent page derives for this account from kB and the server's key-data. */
  async function derivedKeys() {
    const metadata = parseScopedKeyData(await keyData(KEY_SCOPE), [KEY_SCOPE]);
    const account = { uid: fromBase64Url(session.accountId), kA: session.kA, kB: session.kB };
    return { account, metadata, keys: metadata.map((entry) => deriveScopedKey(account, entry)) };
  }

  /**
   * The user's browser follows the SDK's URL, the consent page grants with `keysJwe(keysJwk)` (by
   * default the real derivation), and the browser comes back: the callback URL the app sees.
   */
  async function consentTo(url: URL, keysJwe?: (keysJwk: string) => Promise<string>): Promise<URL> {
    const browser = new Browser();
    const begun = await beginAuthorization(browser, server.url, url);
    if (begun.uid === undefined) throw new Error(`no interaction: ${JSON.stringify(begun)}`);
    const keysJwk = url.searchParams.get('keys_jwk') as string;
    const { account, metadata } = await derivedKeys();
    const jwe = keysJwe === undefined ? await createKeysJwe(account, metadata, keysJwk) : await keysJwe(keysJwk);
    const granted = await consent(browser, server.url, begun.uid, session.state.token, { keys_jwe: jwe });
    expect(granted.status).toBe(200);
    return followToApp(browser, server.url, granted.body.redirectTo as string);
  }

  async function refusal(pending: AuthorizationPending, callback: URL | string): Promise<LatchkeyError> {
    const error = await finishAuthorization(pending, callback).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LatchkeyError);
    return error as LatchkeyError;
  }

  it('gets tokens and the scoped key that kB and the server key-data derive', async () => {
    // The server's URL alone is enough: the SDK finds the issuer under /oauth.
    const { url, pending } = await start(server.url);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('keys_jwk')).toBeTypeOf('string');
    expect(pending.keysPrivateKey?.extractable).toBe(false);
    // What a browser app stores in IndexedDB survives a structured clone, the private key included.
    const kept = structuredClone(pending);
    const result = await finishAuthorization(kept, await consentTo(url));
    expect(result.accessToken).toBeTypeOf('string');
    expect(result.expiresIn).toBeGreaterThan(0);
    expect(result.idTokenClaims?.aud).toBe('notes');
    const { keys } = await derivedKeys();
    expect(Object.keys(result.scopedKeys)).toEqual([KEY_SCOPE]);
    expect(result.scopedKeys[KEY_SCOPE]).toEqual(keys[0]);
    expect(fromBase64Url(result.scopedKeys[KEY_SCOPE]?.k as string)).toEqual(fromBase64Url(keys[0]?.k as string));
  });

  it('refreshes with offline_access: each refresh token works once, and the used one is refused', async () => {
    const { url, pending } = await startAuthorization({
      issuer: server.url,
      clientId: 'notes',
      redirectUri: REDIRECT,
      scopes: ['openid', 'offline_access', KEY_SCOPE],
      keyScopes: [KEY_SCOPE],
      allowInsecureHttp: true,
    });
    expect(url.searchParams.get('prompt')).toBe('consent');
    const signedIn = await finishAuthorization(pending, await consentTo(url));
    const first = signedIn.refreshToken as string;
    expect(first).toBeTypeOf('string');
    const refresh = (refreshToken: string) =>
      refreshAuthorization({ issuer: server.url, clientId: 'notes', refreshToken, allowInsecureHttp: true });
    const refreshed = await refresh(first);
    expect(refreshed.accessToken).toBeTypeOf('string');
    expect(refreshed.accessToken).not.toBe(signedIn.accessToken);
    expect(refreshed.idTokenClaims?.sub).toBe(signedIn.idTokenClaims?.sub);
    expect(refreshed).not.toHaveProperty('scopedKeys');
    const second = refreshed.refreshToken as string;
    expect(second).toBeTypeOf('string');
    expect(second).not.toBe(first);
    // Rotated: the used token is refused...
    const replayed = await refresh(first).then(
      () => null,
      (e: unknown) => e,
    );
    expect(replayed).toBeInstanceOf(LatchkeyError);
    expect((replayed as LatchkeyError).code).toBe('LK_OAUTH_ERROR');
    expect((replayed as LatchkeyError).details).toMatchObject({ error: 'invalid_grant' });
    // ...and its replay revoked the grant, so the token it had been swapped for is refused too.
    const after = await refresh(second).then(
      () => null,
      (e: unknown) => e,
    );
    expect((after as LatchkeyError).details).toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses a callback whose state was tampered with', async () => {
    const { url, pending } = await start();
    const callback = await consentTo(url);
    const state = callback.searchParams.get('state') as string;
    callback.searchParams.set('state', `${state.slice(0, -1)}${state.endsWith('A') ? 'B' : 'A'}`);
    expect((await refusal(pending, callback)).code).toBe('LK_OAUTH_STATE_MISMATCH');
    // Nor is a callback meant for another authorization of the same app taken.
    const other = await start();
    expect((await refusal(pending, await consentTo(other.url))).code).toBe('LK_OAUTH_STATE_MISMATCH');
  });

  it('refuses a replayed callback: the code is spent', async () => {
    const { url, pending } = await start();
    const callback = await consentTo(url);
    await finishAuthorization(pending, callback);
    const error = await refusal(pending, callback);
    expect(error.code).toBe('LK_OAUTH_ERROR');
    expect(error.details).toMatchObject({ error: 'invalid_grant' });
  });

  it('reports the user refusing as access_denied', async () => {
    const { url, pending } = await start();
    const browser = new Browser();
    const begun = await beginAuthorization(browser, server.url, url);
    const aborted = await browser.fetch(`${server.url}/v1/oauth/interaction/${begun.uid}/abort`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(aborted.status).toBe(200);
    const { redirectTo } = (await aborted.json()) as { redirectTo: string };
    const callback = await followToApp(browser, server.url, redirectTo);
    const error = await refusal(pending, callback);
    expect(error.code).toBe('LK_OAUTH_ERROR');
    expect(error.details).toMatchObject({ error: 'access_denied', errorDescription: 'the user refused' });
  });

  it('refuses a keys_jwe encrypted to another key', async () => {
    const { url, pending } = await start();
    const { keys } = await derivedKeys();
    const stranger = await createKeysJwkPair();
    const callback = await consentTo(url, () => encryptScopedKeys(stranger.keysJwk, keys));
    expect((await refusal(pending, callback)).code).toBe('LK_KEYS_JWE_DECRYPT_FAILED');
  });

  it('refuses a keys_jwe that holds another scope than the one asked for', async () => {
    const { url, pending } = await start();
    const { keys } = await derivedKeys();
    const key = keys[0] as NonNullable<(typeof keys)[0]>;
    const elsewhere = { ...key, scope: 'https://identity.example.org/apps/other' };
    const callback = await consentTo(url, (keysJwk) => encryptScopedKeys(keysJwk, [elsewhere]));
    expect((await refusal(pending, callback)).code).toBe('LK_SCOPED_KEYS_BUNDLE_INVALID');
  });
  it('refuses a token response without keys_jwe when keys were asked for', async () => {
    // Someone on the way drops keys_jwk from the request: the server then asks no keys of the consent page.
    const { url, pending } = await start();
    url.searchParams.delete('keys_jwk');
    const browser = new Browser();
    const begun = await beginAuthorization(browser, server.url, url);
    const granted = await consent(browser, server.url, begun.uid as string, session.state.token, {});
    expect(granted.status).toBe(200);
    const callback = await followToApp(browser, server.url, granted.body.redirectTo as string);
    expect((await refusal(pending, callback)).code).toBe('LK_OAUTH_KEYS_MISSING');
  });
  it('refuses plain http unless allowed, and a key scope that is not asked for, before any redirect', async () => {
    const base = { issuer: server.url, clientId: 'notes', redirectUri: REDIRECT, scopes: ['openid', KEY_SCOPE] };
    const insecure = await startAuthorization(base).then(
      () => null,
      (e: unknown) => e,
    );
    expect(insecure).toMatchObject({ code: 'LK_OAUTH_RESPONSE_INVALID' });
    const stray = await startAuthorization({
      ...base,
      allowInsecureHttp: true,
      keyScopes: ['https://identity.example.org/apps/other'],
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(stray).toMatchObject({ code: 'LK_VALIDATION' });
  });
});
