import { appKeyScope } from '@latchkey/core';
import { addOauthScope, connect, openStore } from '@latchkey/server';
import { exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, databaseOn } from '../support/backends.js';
import {
  type App,
  authorizationUrl,
  authorizeApp,
  Browser,
  beginAuthorization,
  beginKeyAuthorization,
  consent,
  encryptKeys,
  KEY_SCOPE,
  PLAIN_SCOPE,
  redeemCode,
  startApp,
  startOauthServer,
} from '../support/oauth.js';
import { type TestServer } from '../support/server.js';

/**
 * Issue 9's attacks on the OAuth server, each refused: with OAuth's error at oidc-provider's endpoints
 * (and no keys_jwe), with an LK_* code at the consent API. On SQLite and PostgreSQL.
 */
const b64json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe.each(BACKENDS)('oauth attacks on %s', (backend) => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    ({ server, token } = await startOauthServer(`attacks-${backend}`, await databaseOn(backend, 'oauth_attacks')));
  });
  afterAll(async () => server?.close());

  /** Up to the app's callback with a code; the keys_jwe the consent page made. */
  async function codeFor(app: App, scope = `openid ${KEY_SCOPE}`) {
    const keys = { [KEY_SCOPE]: { kty: 'oct', k: 'a2V5' } };
    const { params, keysJwe } = await authorizeApp({ baseUrl: server.url, token, keys, app, scope });
    return { params, keysJwe };
  }

  function redeem(app: App, params: URLSearchParams, verifier = app.codeVerifier, client = app.client) {
    return redeemCode(app, params, { verifier, client });
  }

  async function oauthError(response: Response) {
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.keys_jwe).toBeUndefined();
    expect(body.access_token).toBeUndefined();
    return { status: response.status, error: body.error };
  }

  /** The error oidc-provider sends back to the app's redirect URI (an authorization-endpoint refusal). */
  async function authorizationError(app: App, scope: string, extra: Record<string, string>) {
    const begun = await beginAuthorization(new Browser(), server.url, await authorizationUrl(app, scope, extra));
    expect(begun.uid).toBeUndefined();
    return begun.redirect?.searchParams.get('error') ?? JSON.parse(begun.body ?? '{}').error;
  }

  it('refuses a redirect URI that is not registered exactly, without redirecting to it', async () => {
    for (const uri of [
      'https://notes.example.org/callback/',
      'https://notes.example.org/callback?x=1',
      'https://evil.example/callback',
    ]) {
      const app = await startApp(server.url, 'notes', uri);
      const begun = await beginAuthorization(new Browser(), server.url, await authorizationUrl(app, 'openid', {}));
      expect(begun.status).toBe(400);
      expect(begun.redirect).toBeUndefined();
      expect(JSON.parse(begun.body ?? '{}').error).toBe('invalid_redirect_uri');
    }
  });

  it('requires PKCE S256 at authorization and the right verifier at the token endpoint', async () => {
    const app = await startApp(server.url);
    const url = await authorizationUrl(app, 'openid', {});
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
    const begun = await beginAuthorization(new Browser(), server.url, url);
    expect(begun.redirect?.searchParams.get('error')).toBe('invalid_request');

    const plain = await authorizationUrl(app, 'openid', {
      code_challenge_method: 'plain',
      code_challenge: app.codeVerifier,
    });
    expect((await beginAuthorization(new Browser(), server.url, plain)).redirect?.searchParams.get('error')).toBe(
      'invalid_request',
    );

    const { params } = await codeFor(app);
    expect(await oauthError(await redeem(app, params, oauth.generateRandomCodeVerifier()))).toEqual({
      status: 400,
      error: 'invalid_grant',
    });
  });

  it('redeems a code once: a replay gets invalid_grant and no keys', async () => {
    const app = await startApp(server.url);
    const { params, keysJwe } = await codeFor(app);
    const first = (await (await redeem(app, params)).json()) as Record<string, unknown>;
    expect(first.keys_jwe).toBe(keysJwe);
    expect(await oauthError(await redeem(app, params))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('gives N parallel redemptions of one code exactly one token answer with keys_jwe', async () => {
    const app = await startApp(server.url);
    const { params, keysJwe } = await codeFor(app);
    const answers = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const response = await redeem(app, params);
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      }),
    );
    const winners = answers.filter((answer) => answer.status === 200);
    expect(winners).toHaveLength(1);
    expect(winners[0]?.body.keys_jwe).toBe(keysJwe);
    for (const answer of answers.filter((a) => a.status !== 200)) {
      expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
      expect(answer.body.keys_jwe).toBeUndefined();
    }
  });

  it("refuses a code redeemed by another client, and the code's keys stay unserved", async () => {
    const app = await startApp(server.url);
    const { params } = await codeFor(app);
    const response = await redeem(app, params, app.codeVerifier, { client_id: 'other' });
    expect(await oauthError(response)).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('refuses a key-bearing scope the client is not allowed to ask for', async () => {
    const other = await startApp(server.url, 'other', 'https://other.example.org/cb');
    expect(await authorizationError(other, `openid ${KEY_SCOPE}`, { keys_jwk: other.keysJwk })).toBe('invalid_scope');
    // The same client may ask for what it was granted.
    const allowed = await beginAuthorization(
      new Browser(),
      server.url,
      await authorizationUrl(other, `openid ${PLAIN_SCOPE}`),
    );
    expect(allowed.uid).toBeTypeOf('string');
  });

  it("refuses one app's own key scope to another client, even when a registration lists it", async () => {
    // An admin's slip (or a hostile admin command): notes' app-specific scope registered for "other" too.
    const notesOwn = appKeyScope('notes');
    const store = await openStore(connect(server.config.databaseUrl));
    try {
      await addOauthScope(store, { scope: notesOwn, keyClass: 'kB', clients: ['notes', 'other'] }, Date.now());
    } finally {
      await store.close();
    }
    const other = await startApp(server.url, 'other', 'https://other.example.org/cb');
    expect(await authorizationError(other, `openid ${notesOwn}`, { keys_jwk: other.keysJwk })).toBe('invalid_scope');
    const keyData = (clientId: string) =>
      fetch(`${server.url}/v1/oauth/key-data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ client_id: clientId, scope: notesOwn }),
      });
    const refused = await keyData('other');
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { code: string }).code).toBe('LK_OAUTH_SCOPE_INVALID');
    // Its own client still gets it.
    expect(Object.keys((await (await keyData('notes')).json()) as object)).toEqual([notesOwn]);
  });

  it('refuses a keys_jwk that is not a public P-256 key', async () => {
    const app = await startApp(server.url);
    const p384 = await exportJWK((await generateKeyPair('ECDH-ES', { crv: 'P-384', extractable: true })).publicKey);
    const pair = await generateKeyPair('ECDH-ES', { crv: 'P-256', extractable: true });
    const privateJwk = await exportJWK(pair.privateKey);
    const offCurve = { ...app.publicJwk, y: Buffer.alloc(32, 1).toString('base64url') };
    const bad = [
      b64json(privateJwk), // carries d
      b64json(p384),
      b64json({ kty: 'oct', k: 'AAAA' }),
      b64json(offCurve),
      b64json([app.publicJwk]),
      'not base64url!',
      Buffer.from('{"kty":').toString('base64url'),
      b64json({ ...app.publicJwk, x: 'A'.repeat(600) }),
    ];
    for (const keysJwk of bad) {
      expect(await authorizationError(app, `openid ${KEY_SCOPE}`, { keys_jwk: keysJwk })).toBe('invalid_request');
    }
  });

  it('refuses an oversized or malformed keys_jwe at consent, and none when keys were asked', async () => {
    const app = await startApp(server.url);
    const browser = new Browser();
    const uid = await beginKeyAuthorization(browser, server.url, app);
    const big = await encryptKeys(app.keysJwk, { [KEY_SCOPE]: { kty: 'oct', k: 'A'.repeat(800) } });
    expect(big.length).toBeGreaterThan(1024);
    for (const [body, code] of [
      [{ keys_jwe: big }, 'LK_KEYS_JWE_TOO_LARGE'],
      [{ keys_jwe: 'a.b.c' }, 'LK_KEYS_JWE_MALFORMED'],
      [{}, 'LK_OAUTH_KEYS_JWE_INVALID'],
    ] as const) {
      const refused = await consent(browser, server.url, uid, token, body);
      expect(refused).toMatchObject({ status: 400, body: { code } });
    }
  });

  it("refuses a consent POST without the interaction cookie, or with another interaction's", async () => {
    const app = await startApp(server.url);
    const victim = new Browser();
    const uid = await beginKeyAuthorization(victim, server.url, app);
    const keysJwe = await encryptKeys(app.keysJwk, { [KEY_SCOPE]: { kty: 'oct', k: 'a2V5' } });
    // A cross-site request: the right uid and a valid session, but not the browser's cookie.
    const forged = await consent(new Browser(), server.url, uid, token, { keys_jwe: keysJwe });
    expect(forged).toMatchObject({ status: 403, body: { code: 'LK_OAUTH_INTERACTION_INVALID' } });
    // An attacker's own interaction cookie does not open the victim's uid either.
    const attacker = new Browser();
    expect(await beginKeyAuthorization(attacker, server.url, app)).not.toBe(uid);
    const crossed = await fetch(`${server.url}/v1/oauth/interaction/${uid}/consent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, cookie: attacker.allCookies() },
      body: JSON.stringify({ keys_jwe: keysJwe }),
    });
    expect(crossed.status).toBe(403);
    expect(((await crossed.json()) as { code: string }).code).toBe('LK_OAUTH_INTERACTION_INVALID');
    // Without our session the consent is refused too; the real browser can still finish.
    const anonymous = await victim.fetch(`${server.url}/v1/oauth/interaction/${uid}/consent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ keys_jwe: keysJwe }),
    });
    expect(anonymous.status).toBe(401);
    expect((await consent(victim, server.url, uid, token, { keys_jwe: keysJwe })).status).toBe(200);
  });
});
