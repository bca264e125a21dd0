import { addOauthClient, addOauthScope, connect, openStore, type ServerConfig } from '@latchkey/server';
import { CompactEncrypt, exportJWK, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { freePort } from './free-port.js';
import { createLoggedInAccount, startTestServer, type TestServer } from './server.js';

/**
 * The OAuth flow of issue 9 driven as an app and a consent page would: oauth4webapi plays the app
 * (code + PKCE, keys_jwk as an extra parameter), plain fetch with a cookie jar plays the user's browser
 * and the consent page, which signs in with a real OPAQUE login and encrypts keys_jwe with jose.
 */

export const KEY_SCOPE = 'https://identity.example.org/apps/notes';
export const PLAIN_SCOPE = 'profile:read';
export const REDIRECT = 'https://notes.example.org/callback';

/** Registers clients and scopes straight on the database, as `latchkey oauth client|scope add` does. */
export async function registerApps(databaseUrl: string) {
  const store = await openStore(connect(databaseUrl));
  try {
    const now = Date.now();
    await addOauthClient(store, { id: 'notes', name: 'Notes', redirectUris: [REDIRECT] }, now);
    await addOauthClient(store, { id: 'other', name: 'Other', redirectUris: ['https://other.example.org/cb'] }, now);
    await addOauthScope(store, { scope: KEY_SCOPE, keyClass: 'kB', clients: ['notes'] }, now);
    await addOauthScope(store, { scope: PLAIN_SCOPE, keyClass: null, clients: ['notes', 'other'] }, now);
  } finally {
    await store.close();
  }
}

/**
 * A test server for the OAuth flow: on a known port, since the issuer (and so every redirect) names its
 * public URL; with {@link registerApps}' clients and scopes; and `user` signed up and logged in, whose
 * token plays the consent page's session. `overrides` as startTestServer's (a database, a clock...).
 */
export async function startOauthServer(
  user: string,
  overrides: Partial<ServerConfig> = {},
  options: Parameters<typeof startTestServer>[1] = {},
): Promise<{ server: TestServer; token: string }> {
  const port = await freePort();
  const server = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, ...overrides }, options);
  try {
    await registerApps(server.config.databaseUrl);
    const { session } = await createLoggedInAccount(server, `${user}@example.com`, `${user} password`);
    return { server, token: session.state.token };
  } catch (error) {
    await server.close();
    throw error;
  }
}

/** A browser's cookies for one origin: enough for oidc-provider's interaction and resume cookies. */
export class Browser {
  private readonly cookies = new Map<string, { value: string; path: string }>();

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const path = new URL(url).pathname;
    const cookie = [...this.cookies]
      .filter(([, c]) => path.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
    const headers = new Headers(init.headers);
    if (cookie !== '') headers.set('cookie', cookie);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) this.remember(line);
    return response;
  }

  /** Every cookie this browser holds, whatever its path: what an attacker can replay from their own browser. */
  allCookies(): string {
    return [...this.cookies].map(([name, c]) => `${name}=${c.value}`).join('; ');
  }

  private remember(line: string): void {
    const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const path = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
    const expired = attributes.some((a) => /^expires=thu, 01 jan 1970/i.test(a)) || value === '';
    if (expired) this.cookies.delete(name);
    else this.cookies.set(name, { value, path });
  }
}

/** The app's side: discovery, an ephemeral P-256 key pair for keys_jwk, PKCE and state. */
export async function startApp(baseUrl: string, clientId = 'notes', redirectUri = REDIRECT) {
  const issuer = new URL(`${baseUrl}/oauth`);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.allowInsecureRequests]: true }),
  );
  const client: oauth.Client = { client_id: clientId };
  const keyPair = await generateKeyPair('ECDH-ES', { crv: 'P-256', extractable: true });
  const publicJwk = await exportJWK(keyPair.publicKey);
  const keysJwk = Buffer.from(JSON.stringify(publicJwk)).toString('base64url');
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  return { as, client, keyPair, publicJwk, keysJwk, codeVerifier, state, redirectUri };
}

export type App = Awaited<ReturnType<typeof startApp>>;

/**
 * The app redeems its code (with PKCE) at the token endpoint; `as` may name another node's, and
 * `verifier` and `client` may be an attacker's. Returns the raw response, to test refusals too.
 */
export function redeemCode(
  app: App,
  params: URLSearchParams,
  { as = app.as, client = app.client, verifier = app.codeVerifier } = {},
): Promise<Response> {
  return oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, app.redirectUri, verifier, {
    [oauth.allowInsecureRequests]: true,
  });
}

/** The app redeems its refresh token; returns the raw response, to test refusals too. */
export function refreshWith(app: App, refreshToken: string): Promise<Response> {
  return oauth.refreshTokenGrantRequest(app.as, app.client, oauth.None(), refreshToken, {
    [oauth.allowInsecureRequests]: true,
  });
}

export async function authorizationUrl(app: App, scope: string, extra: Record<string, string> = {}) {
  const url = new URL(app.as.authorization_endpoint as string);
  url.searchParams.set('client_id', app.client.client_id);
  url.searchParams.set('redirect_uri', app.redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', scope);
  url.searchParams.set('state', app.state);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(app.codeVerifier));
  url.searchParams.set('code_challenge_method', 'S256');
  for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
  return url;
}

/** The consent page's key work: encrypts `{scope: JWK}` to keys_jwk (ECDH-ES + A256GCM, as FxA does). */
export async function encryptKeys(keysJwk: string, keys: Record<string, unknown>): Promise<string> {
  const jwk = JSON.parse(Buffer.from(keysJwk, 'base64url').toString('utf8')) as Record<string, string>;
  const { importJWK } = await import('jose');
  const key = await importJWK(jwk, 'ECDH-ES');
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(keys)))
    .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' })
    .encrypt(key);
}

/**
 * The browser follows the authorization URL to the interaction; returns the interaction uid, or the
 * redirect to the app when oidc-provider answered at once (an error).
 */
export async function beginAuthorization(browser: Browser, baseUrl: string, url: URL) {
  const first = await browser.fetch(url.href);
  const location = first.headers.get('location');
  if (first.status !== 303 || location === null) return { status: first.status, body: await first.text() };
  const target = new URL(location, baseUrl);
  const match = /^\/v1\/oauth\/interaction\/([^/]+)$/.exec(target.pathname);
  if (match === null) return { status: first.status, redirect: target };
  return { status: first.status, uid: match[1] as string };
}

/**
 * The browser begins `app`'s authorization for `scope` with its keys_jwk (and `extra` parameters) and
 * lands on the consent page; returns the interaction's uid, and fails if oidc-provider answered at once.
 */
export async function beginKeyAuthorization(
  browser: Browser,
  baseUrl: string,
  app: App,
  scope = `openid ${KEY_SCOPE}`,
  extra: Record<string, string> = {},
): Promise<string> {
  const url = await authorizationUrl(app, scope, { keys_jwk: app.keysJwk, ...extra });
  const begun = await beginAuthorization(browser, baseUrl, url);
  if (begun.uid === undefined) throw new Error(`no interaction: ${JSON.stringify(begun)}`);
  return begun.uid;
}

/**
 * The consent page grants interaction `uid` with `keysJwe` (at `consentUrl`, which another node may
 * serve) and the browser follows the resume redirects (at `baseUrl`) to the app's callback URL.
 */
export async function grantAndFollow(
  browser: Browser,
  { baseUrl, consentUrl = baseUrl }: { baseUrl: string; consentUrl?: string },
  uid: string,
  token: string,
  keysJwe: string,
): Promise<URL> {
  const granted = await consent(browser, consentUrl, uid, token, { keys_jwe: keysJwe });
  if (granted.status !== 200) throw new Error(`consent refused: ${granted.status} ${JSON.stringify(granted.body)}`);
  return followToApp(browser, baseUrl, granted.body.redirectTo as string);
}

/**
 * One whole authorization, as the app and the user's browser run it: the app starts (unless `app` is
 * given), the browser reaches the consent page (where `onConsentPage` may look before the grant), the
 * page encrypts `keys` to keys_jwk and grants on `consentUrl` (another node may serve it), and the
 * browser follows on to the app's callback, whose code parameters come back validated.
 */
export async function authorizeApp(options: {
  baseUrl: string;
  token: string;
  keys: Record<string, unknown>;
  app?: App;
  consentUrl?: string;
  scope?: string;
  extra?: Record<string, string>;
  onConsentPage?: (browser: Browser, uid: string) => Promise<void>;
}) {
  const { baseUrl, consentUrl = baseUrl } = options;
  const app = options.app ?? (await startApp(baseUrl));
  const browser = new Browser();
  const uid = await beginKeyAuthorization(browser, baseUrl, app, options.scope, options.extra);
  await options.onConsentPage?.(browser, uid);
  const keysJwe = await encryptKeys(app.keysJwk, options.keys);
  const callback = await grantAndFollow(browser, { baseUrl, consentUrl }, uid, options.token, keysJwe);
  return { app, callback, keysJwe, params: oauth.validateAuthResponse(app.as, app.client, callback, app.state) };
}

/** The consent page grants; the browser follows the resume redirect to the app's callback. */
export async function consent(browser: Browser, baseUrl: string, uid: string, token: string, body: object) {
  const response = await browser.fetch(`${baseUrl}/v1/oauth/interaction/${uid}/consent`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Follows redirects within the server until one leaves it (the app's callback). */
export async function followToApp(browser: Browser, baseUrl: string, redirectTo: string): Promise<URL> {
  let next = new URL(redirectTo, baseUrl);
  for (let hops = 0; hops < 5 && next.origin === new URL(baseUrl).origin; hops++) {
    const response = await browser.fetch(next.href);
    const location = response.headers.get('location');
    if (location === null)
      throw new Error(`no redirect from ${next.href}: ${response.status} ${await response.text()}`);
    next = new URL(location, next);
  }
  return next;
}
