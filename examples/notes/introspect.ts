import { LatchkeyError } from '@latchkey/core';

/**
 * How the notes backend learns who a request is from: it asks Latchkey's token introspection endpoint
 * (RFC 7662) about the bearer token, as the public client `notes`.
 *
 * Why introspection and not userinfo: userinfo answers for any app's access token that carries
 * `openid`, so a token the user gave some other app could be replayed here and read as the user's
 * (token substitution). Latchkey lets a public client introspect only its own tokens (its
 * `allowedPolicy`), and the answer names the `client_id`, `token_type` and issuer, which are all
 * checked below: only an access token issued to this app, by this issuer, still valid, is taken.
 */

/** The account a bearer token speaks for: Latchkey's account id, the token's `sub`. */
export interface TokenOwner {
  sub: string;
}

/** Checks a bearer token; `undefined` when it does not let the request in. */
export type Introspector = (token: string) => Promise<TokenOwner | undefined>;

/** RFC 6750's b64token, bounded: anything else is refused before it is ever sent on. */
const BEARER_TOKEN = /^[A-Za-z0-9._~+/-]{16,2048}=*$/;

interface Discovery {
  issuer?: unknown;
  introspection_endpoint?: unknown;
}

interface Introspection {
  active?: unknown;
  client_id?: unknown;
  token_type?: unknown;
  iss?: unknown;
  sub?: unknown;
  exp?: unknown;
}

async function introspectionEndpoint(issuer: string): Promise<string> {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`discovery answered ${response.status}`);
  const discovery = (await response.json()) as Discovery;
  // RFC 8414 §3.3: the document must name the issuer it was fetched for.
  if (discovery.issuer !== issuer || typeof discovery.introspection_endpoint !== 'string') {
    throw new Error('the discovery document is not this issuer’s, or offers no introspection');
  }
  return discovery.introspection_endpoint;
}

/** Every condition under which an introspection answer lets a request in. */
function ownerOf(answer: Introspection, issuer: string, clientId: string, nowSeconds: number): TokenOwner | undefined {
  const valid =
    answer.active === true &&
    answer.client_id === clientId &&
    // Refresh tokens introspect too, without a token_type: only an access token may call the API.
    answer.token_type === 'Bearer' &&
    answer.iss === issuer &&
    typeof answer.sub === 'string' &&
    answer.sub !== '' &&
    typeof answer.exp === 'number' &&
    answer.exp > nowSeconds;
  return valid ? { sub: answer.sub as string } : undefined;
}

/**
 * An {@link Introspector} against the Latchkey issuer (the server's URL + `/oauth`). The endpoint is
 * discovered on first use (Latchkey may start after this backend) and again after a failure. When
 * Latchkey cannot be asked, the request fails with `LK_UNAVAILABLE` rather than letting anyone in.
 */
export function latchkeyIntrospector(options: { issuer: string; clientId: string }): Introspector {
  const { issuer, clientId } = options;
  let endpoint: Promise<string> | undefined;
  return async (token) => {
    if (!BEARER_TOKEN.test(token)) return undefined;
    endpoint ??= introspectionEndpoint(issuer);
    try {
      const response = await fetch(await endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token', client_id: clientId }),
      });
      if (!response.ok) throw new Error(`introspection answered ${response.status}`);
      return ownerOf((await response.json()) as Introspection, issuer, clientId, Math.floor(Date.now() / 1000));
    } catch (error) {
      endpoint = undefined;
      // The cause is for this backend's log, not for the client.
      console.error('notes: token introspection failed:', error instanceof Error ? error.message : error);
      throw new LatchkeyError('LK_UNAVAILABLE', 'Latchkey cannot be asked about the token; try again.');
    }
  };
}
