import { FRESH_AUTH_MS } from '@latchkey/core';
import { compactDecrypt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, databaseOn } from '../support/backends.js';
import { freePort } from '../support/free-port.js';
import {
  authorizeApp,
  Browser,
  beginKeyAuthorization,
  consent,
  encryptKeys,
  KEY_SCOPE,
  redeemCode,
  refreshWith,
  registerApps,
  startApp,
  startOauthServer,
} from '../support/oauth.js';
import { createLoggedInAccount, createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * Issue 9, the server: oauth4webapi (code nobody here wrote) runs the whole code + PKCE flow against
 * our oidc-provider mount with keys_jwk as an extra parameter, and reads keys_jwe from the token answer;
 * the consent page is played with a real OPAQUE login. On SQLite and PostgreSQL.
 */
describe.each(BACKENDS)('oauth flow on %s', (backend) => {
  let server: TestServer;
  let token: string;
  const scopedKey = { kty: 'oct', k: 'c2NvcGVkIGtleSBmb3IgdGhlIG5vdGVzIGFwcCEhISE', kid: '1-abc', scope: KEY_SCOPE };

  beforeAll(async () => {
    ({ server, token } = await startOauthServer(`flow-${backend}`, await databaseOn(backend, 'oauth_flow')));
  });
  afterAll(async () => server?.close());

  /** One whole authorization up to the app's callback; returns the app and the callback URL. */
  async function authorize(scope = `openid ${KEY_SCOPE}`, extra: Record<string, string> = {}) {
    let details: Record<string, unknown> = {};
    const onConsentPage = async (browser: Browser, uid: string) => {
      const response = await browser.fetch(`${server.url}/v1/oauth/interaction/${uid}/details`);
      details = (await response.json()) as Record<string, unknown>;
    };
    const keys = { [KEY_SCOPE]: scopedKey };
    const authorized = await authorizeApp({ baseUrl: server.url, token, keys, scope, extra, onConsentPage });
    return { ...authorized, details };
  }

  it('publishes a discovery document with its endpoints under the issuer', async () => {
    const app = await startApp(server.url);
    expect(app.as.issuer).toBe(`${server.url}/oauth`);
    expect(app.as.token_endpoint).toBe(`${server.url}/oauth/token`);
    expect(app.as.code_challenge_methods_supported).toEqual(['S256']);
    expect(app.as.id_token_signing_alg_values_supported).toEqual(['ES256']);
    expect(app.as.scopes_supported).toContain(KEY_SCOPE);
    // The code flow for public clients, and nothing else: no implicit flow, no client secrets.
    expect(app.as.response_types_supported).toEqual(['code']);
    expect(app.as.grant_types_supported).not.toContain('implicit');
    expect(app.as.token_endpoint_auth_methods_supported).toEqual(['none']);
  });

  it('names URLs after the forwarded host and scheme behind a trusted proxy', async () => {
    const port = await freePort();
    const proxied = await startTestServer({
      port,
      publicUrl: 'https://keys.example.org',
      trustProxy: ['127.0.0.1'],
      databaseUrl: server.config.databaseUrl,
      masterKeyFile: server.config.masterKeyFile,
    });
    try {
      const response = await fetch(`${proxied.url}/oauth/.well-known/openid-configuration`, {
        headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'keys.example.org' },
      });
      const document = (await response.json()) as Record<string, string>;
      expect(document.issuer).toBe('https://keys.example.org/oauth');
      expect(document.token_endpoint).toBe('https://keys.example.org/oauth/token');
    } finally {
      await proxied.close();
    }
  });

  it('runs code + PKCE with keys_jwk and hands keys_jwe beside the access token, once', async () => {
    const { app, callback, keysJwe, details } = await authorize();
    expect(details).toMatchObject({ client: { id: 'notes', name: 'Notes' }, keysRequested: true });
    expect(details.scopes).toEqual([
      { scope: 'openid', keyClass: null },
      { scope: KEY_SCOPE, keyClass: 'kB' },
    ]);
    const params = oauth.validateAuthResponse(app.as, app.client, callback, app.state);
    const response = await redeemCode(app, params);
    const tokens = await oauth.processAuthorizationCodeResponse(app.as, app.client, response);
    expect(tokens.access_token).toBeTypeOf('string');
    expect(tokens.keys_jwe).toBe(keysJwe);
    const { plaintext } = await compactDecrypt(tokens.keys_jwe as string, app.keyPair.privateKey);
    expect(JSON.parse(new TextDecoder().decode(plaintext))).toEqual({ [KEY_SCOPE]: scopedKey });
    // The ID token is ES256-signed by the key the discovery document's jwks_uri serves.
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    expect(claims?.aud).toBe('notes');
  });

  it('rotates refresh tokens, revokes, and introspects', async () => {
    const { app, callback } = await authorize(`openid offline_access ${KEY_SCOPE}`, { prompt: 'consent' });
    const params = oauth.validateAuthResponse(app.as, app.client, callback, app.state);
    const insecure = { [oauth.allowInsecureRequests]: true } as const;
    const tokens = await oauth.processAuthorizationCodeResponse(app.as, app.client, await redeemCode(app, params));
    const first = tokens.refresh_token as string;
    expect(first).toBeTypeOf('string');
    const refreshed = await oauth.processRefreshTokenResponse(app.as, app.client, await refreshWith(app, first));
    expect(refreshed.refresh_token).toBeTypeOf('string');
    expect(refreshed.refresh_token).not.toBe(first);
    expect(refreshed.keys_jwe).toBeUndefined();
    const access = refreshed.access_token;
    const active = await oauth.processIntrospectionResponse(
      app.as,
      app.client,
      await oauth.introspectionRequest(app.as, app.client, oauth.None(), access, insecure),
    );
    expect(active.active).toBe(true);
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(app.as, app.client, oauth.None(), access, insecure),
    );
    const after = await oauth.processIntrospectionResponse(
      app.as,
      app.client,
      await oauth.introspectionRequest(app.as, app.client, oauth.None(), access, insecure),
    );
    expect(after.active).toBe(false);
    // The rotated-away token is spent: using it again is refused (and, as reuse, revokes the grant).
    const reused = await refreshWith(app, first);
    expect(reused.status).toBe(400);
    expect(((await reused.json()) as { error: string }).error).toBe('invalid_grant');
  });
  it("ends an app's grant with the account: its refresh token and access token stop working", async () => {
    const password = 'leaving password';
    const { session } = await createLoggedInAccount(server, `leaving-${backend}@example.com`, password);
    const keys = { [KEY_SCOPE]: scopedKey };
    const scope = `openid offline_access ${KEY_SCOPE}`;
    const { app, callback } = await authorizeApp({
      baseUrl: server.url,
      token: session.state.token,
      keys,
      scope,
      extra: { prompt: 'consent' },
    });
    const params = oauth.validateAuthResponse(app.as, app.client, callback, app.state);
    const tokens = await oauth.processAuthorizationCodeResponse(app.as, app.client, await redeemCode(app, params));
    const insecure = { [oauth.allowInsecureRequests]: true } as const;
    await session.deleteAccount(password);
    const refresh = await refreshWith(app, tokens.refresh_token as string);
    expect(refresh.status).toBe(400);
    expect(((await refresh.json()) as { error: string }).error).toBe('invalid_grant');
    const introspected = await oauth.processIntrospectionResponse(
      app.as,
      app.client,
      await oauth.introspectionRequest(app.as, app.client, oauth.None(), tokens.access_token, insecure),
    );
    expect(introspected.active).toBe(false);
  });
});

describe('oauth consent needs a fresh session', () => {
  let server: TestServer;
  let clock = Date.now();

  beforeAll(async () => {
    const port = await freePort();
    server = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}` }, { now: () => clock });
    await registerApps(server.config.databaseUrl);
  });
  afterAll(async () => server?.close());

  const keyData = (token: string, scope: string) =>
    fetch(`${server.url}/v1/oauth/key-data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ client_id: 'notes', scope }),
    });

  it('serves scoped-key metadata to a fresh session only, and consents only for one', async () => {
    const { client } = await createVerifiedAccount(server, 'fresh@example.com', 'fresh password');
    const session = await client.logIn('fresh@example.com', 'fresh password');
    const token = session.state.token;
    const fresh = await keyData(token, `openid ${KEY_SCOPE}`);
    expect(fresh.status).toBe(200);
    const data = (await fresh.json()) as Record<string, Record<string, unknown>>;
    expect(Object.keys(data)).toEqual([KEY_SCOPE]);
    expect(data[KEY_SCOPE]).toEqual({
      identifier: KEY_SCOPE,
      keyRotationSecret: expect.stringMatching(/^[0-9a-f]{64}$/),
      keyRotationTimestamp: session.state.keysChangedAt,
      keyClass: 'kB',
    });
    // The secret is kept: the same key derives again tomorrow.
    expect(await (await keyData(token, KEY_SCOPE)).json()).toEqual(data);
    // A scope this app may not ask for is refused, not silently dropped.
    const other = await keyData(token, 'https://identity.example.org/apps/unknown');
    expect(((await other.json()) as { code: string }).code).toBe('LK_OAUTH_SCOPE_INVALID');

    const app = await startApp(server.url);
    const browser = new Browser();
    const uid = await beginKeyAuthorization(browser, server.url, app);
    clock += FRESH_AUTH_MS + 1000;
    const stale = await keyData(token, KEY_SCOPE);
    expect(stale.status).toBe(403);
    expect(((await stale.json()) as { code: string }).code).toBe('LK_REAUTH_REQUIRED');
    const keysJwe = await encryptKeys(app.keysJwk, { [KEY_SCOPE]: { kty: 'oct', k: 'a2V5' } });
    const refused = await consent(browser, server.url, uid, token, { keys_jwe: keysJwe });
    expect(refused).toMatchObject({ status: 403, body: { code: 'LK_REAUTH_REQUIRED' } });
  });
});

describe('oauth issuer on an ephemeral port', () => {
  let server: TestServer;

  beforeAll(async () => {
    // Port 0 and no public URL: the port is known only once the server listens.
    server = await startTestServer({ port: 0 });
    await registerApps(server.config.databaseUrl);
  });
  afterAll(async () => server?.close());

  it('names the port it listens on as the issuer, and an app runs the whole flow against it', async () => {
    expect(new URL(server.url).port).not.toBe('0');
    const discovery = (await (await fetch(`${server.url}/oauth/.well-known/openid-configuration`)).json()) as {
      issuer: string;
    };
    expect(discovery.issuer).toBe(`${server.url}/oauth`);
    // oauth4webapi checks the issuer it was given against discovery's, as every careful app does.
    const app = await startApp(server.url);
    expect(app.as.issuer).toBe(`${server.url}/oauth`);
    const { session } = await createLoggedInAccount(server, 'ephemeral@example.com', 'ephemeral password');
    const keys = { [KEY_SCOPE]: { kty: 'oct', k: 'a2V5', scope: KEY_SCOPE } };
    const { params, keysJwe } = await authorizeApp({ baseUrl: server.url, token: session.state.token, keys, app });
    const tokens = await oauth.processAuthorizationCodeResponse(app.as, app.client, await redeemCode(app, params));
    expect(tokens.keys_jwe).toBe(keysJwe);
  });
});
