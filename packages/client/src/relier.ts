import {
  constantTimeEqual,
  createKeysJwkPair,
  decryptScopedKeys,
  LatchkeyError,
  type ScopedKeyJwk,
  utf8,
} from '@latchkey/core';
import * as oauth from 'oauth4webapi';

/**
 * The app ("relier") side of issue 9: sign a user in through a Latchkey server with OAuth code + PKCE
 * and receive the scoped keys the consent page encrypted to a one-time key (FxA's `keys_jwk` →
 * `keys_jwe`). Built on oauth4webapi, browser-safe, and the same in Node 20.
 *
 * ```ts
 * const { url, pending } = await startAuthorization({ issuer, clientId, redirectUri, scopes, keyScopes });
 * await savePending(pending);             // IndexedDB in a browser: see AuthorizationPending
 * location.assign(url);                   // …the user consents, the browser comes back to redirectUri
 * const result = await finishAuthorization(await loadPending(), location.href);
 * result.scopedKeys[keyScopes[0]];        // { kty: 'oct', k, kid, scope }
 * ```
 */

/** What {@link startAuthorization} needs. */
export interface AuthorizationOptions {
  /** The server's URL, or its OAuth issuer (the server's URL + `/oauth`). */
  issuer: string;
  clientId: string;
  /** One of the client's registered redirect URIs, exactly. */
  redirectUri: string;
  /**
   * Every scope asked for, `openid` and `offline_access` included when wanted. `offline_access` (a
   * refresh token, for {@link refreshAuthorization}) makes the request ask for consent explicitly.
   */
  scopes: readonly string[];
  /**
   * The scopes among `scopes` that carry keys (as the app registered them). When there are any, a
   * one-time key pair is made and its public half sent as `keys_jwk`; the answer must then hold the
   * keys of exactly these scopes. The SDK cannot tell from the scope names which carry keys, so the
   * app says so.
   */
  keyScopes?: readonly string[];
  /**
   * Allow plain http to the server (oauth4webapi refuses it otherwise). For a server on 127.0.0.1 in
   * development and tests only: over http anyone on the path reads the tokens.
   */
  allowInsecureHttp?: boolean;
}

/**
 * What the app keeps between the redirect out and the callback in, and hands to
 * {@link finishAuthorization}. Every member is structured-cloneable, the private key included: a
 * browser app stores the object as-is in IndexedDB (`store.put(pending, state)`), which keeps the
 * CryptoKey non-extractable across the page navigation; sessionStorage would need a JSON form and so
 * an extractable key, which is why we give none. A Node app (a CLI with a loopback redirect, or a web
 * backend) keeps it in memory, keyed by `state`: the pair lives for one authorization of a few
 * minutes, and if the process dies in between the user starts again, rather than the private key
 * ever being written to a disk. Use it once and delete it.
 */
export interface AuthorizationPending {
  /** The server's discovery document, so the callback needs no second request and stays bound to this issuer. */
  authorizationServer: oauth.AuthorizationServer;
  clientId: string;
  redirectUri: string;
  state: string;
  codeVerifier: string;
  keyScopes: readonly string[];
  /** The private half of the `keys_jwk` pair, not extractable; absent when no keys were asked for. */
  keysPrivateKey?: CryptoKey;
  allowInsecureHttp: boolean;
}

/** What {@link finishAuthorization} returns. */
export interface AuthorizationResult {
  accessToken: string;
  /** Present when `offline_access` was granted. */
  refreshToken?: string;
  /** Seconds, as the server said. */
  expiresIn?: number;
  /** The ID token's checked claims, when `openid` was asked for. */
  idTokenClaims?: oauth.IDToken;
  /** The scopes granted, as the server said. */
  scope?: string;
  /** One JWK per key scope, checked as Firefox checks them; empty when no keys were asked for. */
  scopedKeys: Record<string, ScopedKeyJwk>;
}

/** What {@link refreshAuthorization} returns: new tokens, and never keys (keys_jwe comes once, with the code). */
export type RefreshResult = Omit<AuthorizationResult, 'scopedKeys'>;

/** What {@link refreshAuthorization} needs. */
export interface RefreshOptions {
  /** The server's URL, or its OAuth issuer. */
  issuer: string;
  clientId: string;
  /** The refresh token of the last answer: each use replaces it. */
  refreshToken: string;
  /** As {@link AuthorizationOptions.allowInsecureHttp}. */
  allowInsecureHttp?: boolean;
}

/** Accepts the server's URL or its issuer: ours is always the server's URL + `/oauth`. */
function issuerUrl(issuer: string): URL {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = path.endsWith('/oauth') ? path : `${path}/oauth`;
  return url;
}

function httpOptions(allowInsecureHttp: boolean) {
  return { [oauth.allowInsecureRequests]: allowInsecureHttp };
}

/** Every key scope must be one of the scopes asked for, or the consent page would never see it. */
function checkKeyScopes(scopes: readonly string[], keyScopes: readonly string[]): void {
  const stray = keyScopes.find((scope) => !scopes.includes(scope));
  if (stray !== undefined) {
    throw new LatchkeyError('LK_VALIDATION', `The key scope ${stray} is not among the scopes asked for.`);
  }
}

/** oauth4webapi's failures, each as one of ours: an OAuth error keeps its `error` and description. */
function fromOauth(error: unknown): LatchkeyError {
  if (error instanceof LatchkeyError) return error;
  if (error instanceof oauth.AuthorizationResponseError || error instanceof oauth.ResponseBodyError) {
    return new LatchkeyError('LK_OAUTH_ERROR', undefined, {
      error: error.error,
      errorDescription: error.error_description,
    });
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new LatchkeyError('LK_OAUTH_RESPONSE_INVALID', undefined, { reason });
}

async function discover(issuer: URL, allowInsecureHttp: boolean): Promise<oauth.AuthorizationServer> {
  try {
    const response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...httpOptions(allowInsecureHttp) });
    return await oauth.processDiscoveryResponse(issuer, response);
  } catch (error) {
    throw fromOauth(error);
  }
}

/**
 * Starts an authorization: discovery, a PKCE S256 verifier, a random state and, when key scopes are
 * asked for, a one-time P-256 key pair (core's createKeysJwkPair). Returns the URL to send the user's
 * browser to and what to keep until the callback (see {@link AuthorizationPending}).
 */
export async function startAuthorization(
  options: AuthorizationOptions,
): Promise<{ url: URL; pending: AuthorizationPending }> {
  const keyScopes = [...(options.keyScopes ?? [])];
  checkKeyScopes(options.scopes, keyScopes);
  const allowInsecureHttp = options.allowInsecureHttp ?? false;
  const authorizationServer = await discover(issuerUrl(options.issuer), allowInsecureHttp);
  if (typeof authorizationServer.authorization_endpoint !== 'string') {
    throw new LatchkeyError('LK_OAUTH_RESPONSE_INVALID', undefined, { reason: 'no authorization_endpoint' });
  }
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(authorizationServer.authorization_endpoint);
  url.searchParams.set('client_id', options.clientId);
  url.searchParams.set('redirect_uri', options.redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', options.scopes.join(' '));
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
  url.searchParams.set('code_challenge_method', 'S256');
  // OpenID Connect Core §11: a refresh token (offline_access) is granted only on an explicit consent prompt.
  if (options.scopes.includes('offline_access')) url.searchParams.set('prompt', 'consent');
  const pending: AuthorizationPending = {
    authorizationServer,
    clientId: options.clientId,
    redirectUri: options.redirectUri,
    state,
    codeVerifier,
    keyScopes,
    allowInsecureHttp,
  };
  if (keyScopes.length > 0) {
    const pair = await createKeysJwkPair();
    url.searchParams.set('keys_jwk', pair.keysJwk);
    pending.keysPrivateKey = pair.privateKey;
  }
  return { url, pending };
}

/** Compares the state without leaking, by timing, how much of a guess was right. */
function sameState(expected: string, received: string | null): boolean {
  return received !== null && constantTimeEqual(utf8(expected), utf8(received));
}

/**
 * The callback's parameters, checked: our state first (so an answer to another authorization, or
 * forged, is `LK_OAUTH_STATE_MISMATCH` whatever else it says), then oauth4webapi's checks of the
 * issuer and of an `error` answer (`LK_OAUTH_ERROR`).
 */
function callbackParameters(pending: AuthorizationPending, callbackUrl: string | URL): URLSearchParams {
  const callback = new URL(callbackUrl);
  if (!sameState(pending.state, callback.searchParams.get('state'))) {
    throw new LatchkeyError('LK_OAUTH_STATE_MISMATCH');
  }
  try {
    const client: oauth.Client = { client_id: pending.clientId };
    return oauth.validateAuthResponse(pending.authorizationServer, client, callback, pending.state);
  } catch (error) {
    throw fromOauth(error);
  }
}

async function exchangeCode(pending: AuthorizationPending, parameters: URLSearchParams) {
  const client: oauth.Client = { client_id: pending.clientId };
  try {
    const response = await oauth.authorizationCodeGrantRequest(
      pending.authorizationServer,
      client,
      oauth.None(),
      parameters,
      pending.redirectUri,
      pending.codeVerifier,
      httpOptions(pending.allowInsecureHttp),
    );
    return await oauth.processAuthorizationCodeResponse(pending.authorizationServer, client, response);
  } catch (error) {
    throw fromOauth(error);
  }
}

/**
 * The scoped keys of the token response: decrypted with the pending private key and checked to be
 * exactly the key scopes asked for (core's decryptScopedKeys: `LK_KEYS_JWE_*`,
 * `LK_SCOPED_KEYS_BUNDLE_INVALID`). No keys asked for: none taken, whatever the server sent.
 */
async function scopedKeysOf(
  pending: AuthorizationPending,
  tokens: oauth.TokenEndpointResponse,
): Promise<Record<string, ScopedKeyJwk>> {
  if (pending.keyScopes.length === 0 || pending.keysPrivateKey === undefined) return {};
  const keysJwe = tokens.keys_jwe;
  if (typeof keysJwe !== 'string' || keysJwe === '') throw new LatchkeyError('LK_OAUTH_KEYS_MISSING');
  return { ...(await decryptScopedKeys(keysJwe, pending.keysPrivateKey, pending.keyScopes)) };
}

/**
 * Finishes an authorization from the URL the browser came back to: checks the state, exchanges the
 * code with the PKCE verifier, and decrypts `keys_jwe`. Nothing is returned unless every step passed.
 * Throws `LK_OAUTH_STATE_MISMATCH`, `LK_OAUTH_ERROR` (the server's `error`, e.g. `access_denied` or
 * `invalid_grant` for a code used twice, in `details`), `LK_OAUTH_KEYS_MISSING`,
 * `LK_OAUTH_RESPONSE_INVALID`, or core's `LK_KEYS_JWE_*` / `LK_SCOPED_KEYS_BUNDLE_INVALID` for keys
 * that are not the ones asked for.
 */
export async function finishAuthorization(
  pending: AuthorizationPending,
  callbackUrl: string | URL,
): Promise<AuthorizationResult> {
  const tokens = await exchangeCode(pending, callbackParameters(pending, callbackUrl));
  const scopedKeys = await scopedKeysOf(pending, tokens);
  return { ...tokensOf(tokens), scopedKeys };
}

/** The token response's members an app uses, the ID token's claims checked. */
function tokensOf(tokens: oauth.TokenEndpointResponse): RefreshResult {
  const result: RefreshResult = { accessToken: tokens.access_token };
  if (tokens.refresh_token !== undefined) result.refreshToken = tokens.refresh_token;
  if (tokens.expires_in !== undefined) result.expiresIn = tokens.expires_in;
  if (tokens.scope !== undefined) result.scope = tokens.scope;
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  if (claims !== undefined) result.idTokenClaims = claims;
  return result;
}

/**
 * New tokens for a refresh token (granted with `offline_access`). The server rotates refresh tokens:
 * the answer carries the one to keep, and the one just used is refused from now on (`LK_OAUTH_ERROR`
 * with `invalid_grant`), as is every later one if a used token is ever replayed (OAuth 2.0 Security
 * BCP §4.14.2: the server then revokes the grant). No keys come with it: the scoped keys an app got at
 * sign-in are its to keep. Throws as {@link finishAuthorization} does.
 */
export async function refreshAuthorization(options: RefreshOptions): Promise<RefreshResult> {
  const allowInsecureHttp = options.allowInsecureHttp ?? false;
  const authorizationServer = await discover(issuerUrl(options.issuer), allowInsecureHttp);
  const client: oauth.Client = { client_id: options.clientId };
  try {
    const response = await oauth.refreshTokenGrantRequest(
      authorizationServer,
      client,
      oauth.None(),
      options.refreshToken,
      httpOptions(allowInsecureHttp),
    );
    return tokensOf(await oauth.processRefreshTokenResponse(authorizationServer, client, response));
  } catch (error) {
    throw fromOauth(error);
  }
}
