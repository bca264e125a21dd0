import {
  type AccountRootKeys,
  createKeysJwe,
  LatchkeyError,
  parseScopedKeyData,
  type ScopedKeyClass,
} from '@latchkey/core';

/**
 * The consent page's side of an OAuth authorization (issue 9): read what the app asks for, then
 * grant it (deriving the app's scoped keys here, in the user's browser, and encrypting them to the
 * app's one-time `keys_jwk`, so nothing key-bearing reaches the server in clear) or refuse it. Every
 * interaction route also needs oidc-provider's interaction cookie, which a same-origin fetch sends.
 */

/** One scope the app asks for, and which account key its scoped key comes from (`null`: no key). */
export interface OauthScopeRequest {
  scope: string;
  keyClass: ScopedKeyClass | null;
}

/** What an app asks for in a pending authorization, as the consent page shows it. */
export interface OauthInteraction {
  uid: string;
  client: { id: string; name: string };
  scopes: OauthScopeRequest[];
  /** True when the app sent a `keys_jwk`: it then gets a `keys_jwe`, even if no scope carries keys. */
  keysRequested: boolean;
  /** The app's one-time public key (base64url of a P-256 JWK), present when keys were asked for. */
  keysJwk?: string;
}

/** One HTTP exchange with the server, with or without the session's bearer token. */
export type ConsentRequest = <T>(method: string, path: string, body?: unknown) => Promise<T>;

function interactionPath(uid: string, action = ''): string {
  return `/v1/oauth/interaction/${encodeURIComponent(uid)}${action}`;
}

/** What the app asks for. An unknown, expired or other browser's `uid` is `LK_OAUTH_INTERACTION_INVALID`. */
export function fetchInteraction(request: ConsentRequest, uid: string): Promise<OauthInteraction> {
  return request<OauthInteraction>('GET', interactionPath(uid, '/details'));
}

/** Refuses the request; returns where the browser goes next (the app then gets `access_denied`). */
export async function refuseInteraction(request: ConsentRequest, uid: string): Promise<string> {
  return (await request<{ redirectTo: string }>('POST', interactionPath(uid, '/abort'))).redirectTo;
}

/**
 * Grants the request: for an app that asked for keys, fetches the scoped-key metadata (a fresh
 * session only: `LK_REAUTH_REQUIRED`), derives every key-bearing scope's key from `account()`'s kA or
 * kB, and posts only the `keys_jwe`. Returns where the browser goes next (the app's callback, through
 * oidc-provider's resume). `account()` throws `LK_NOT_LOGGED_IN` for a session without its keys.
 */
export async function grantInteraction(
  request: ConsentRequest,
  uid: string,
  account: () => AccountRootKeys,
): Promise<string> {
  const interaction = await fetchInteraction(request, uid);
  const body = interaction.keysRequested ? { keys_jwe: await keysJweFor(request, interaction, account()) } : {};
  return (await request<{ redirectTo: string }>('POST', interactionPath(uid, '/consent'), body)).redirectTo;
}

async function keysJweFor(
  request: ConsentRequest,
  interaction: OauthInteraction,
  account: AccountRootKeys,
): Promise<string> {
  if (typeof interaction.keysJwk !== 'string') {
    throw new LatchkeyError('LK_SERVER_PROTOCOL', "The server did not relay the app's keys_jwk.");
  }
  const keyScopes = interaction.scopes.filter((entry) => entry.keyClass !== null).map((entry) => entry.scope);
  const data =
    keyScopes.length === 0
      ? {}
      : await request<unknown>('POST', '/v1/oauth/key-data', {
          client_id: interaction.client.id,
          scope: keyScopes.join(' '),
        });
  const metadata = parseScopedKeyData(data, keyScopes);
  // A scope the page showed as key-bearing but left out of the bundle would leave the app without its key.
  const missing = keyScopes.find((scope) => !metadata.some((entry) => entry.identifier === scope));
  if (missing !== undefined) {
    throw new LatchkeyError('LK_SCOPED_KEY_INPUT_INVALID', `The server sent no key data for ${missing}.`);
  }
  return createKeysJwe(account, metadata, interaction.keysJwk);
}
