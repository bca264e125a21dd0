import { LatchkeyError, parseKeysJwk } from '@latchkey/core';
import type Provider from 'oidc-provider';
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import type { ServerContext } from '../../context.js';
import { adapterFor } from './adapter.js';
import { liveScopes, refreshScopes, type ScopeSet, setScopes } from './live-scopes.js';
import { loadOidcProvider } from './oidc.js';
import { loadOrCreateOauthSecrets } from './signing-keys.js';

/** Where oidc-provider is mounted; its issuer is the server's public URL plus this. */
export const OAUTH_PREFIX = '/oauth';
/** The consent page's API lives under the interaction URL, so the interaction cookie (scoped to it) goes along. */
export const INTERACTION_PREFIX = '/v1/oauth/interaction';

/** Codes live one minute (RFC 6749 §4.1.2 recommends at most ten); the relayed keys_jwe lives as long. */
export const CODE_TTL_SECONDS = 60;

/**
 * Consent is asked whenever keys are, even if the user granted the scopes before: each keys_jwk is a
 * fresh key the browser must encrypt to, so the consent page must run (issue 9).
 */
function keysNeedConsent({ interactionPolicy }: Awaited<ReturnType<typeof loadOidcProvider>>) {
  const policy = interactionPolicy.base();
  const keysRequested = new interactionPolicy.Check(
    'keys_requested',
    'scoped keys are delivered only through the consent page',
    (ctx: KoaContextWithOIDC) =>
      ctx.oidc.params?.keys_jwk !== undefined && !ctx.oidc.result?.consent
        ? interactionPolicy.Check.REQUEST_PROMPT
        : interactionPolicy.Check.NO_NEED_TO_PROMPT,
  );
  policy.get('consent')?.checks.push(keysRequested);
  return policy;
}

/** The public URL if configured, else the host and the port the server listens on (`listeningPort`, once known). */
export function issuerOf(ctx: ServerContext, listeningPort?: number): string {
  const base = ctx.config.publicUrl ?? `http://${ctx.config.host}:${listeningPort ?? ctx.config.port}`;
  return `${base}${OAUTH_PREFIX}`;
}

/** oidc-provider configured for Latchkey: code + PKCE S256, DB-backed, keys_jwk as an extra parameter. */
export async function createProvider(ctx: ServerContext, issuer: string): Promise<Provider> {
  const scopes: ScopeSet = new Set();
  const oidc = await loadOidcProvider();
  const { errors } = oidc;
  const { signingKey, cookieKeys } = await loadOrCreateOauthSecrets(ctx.store, ctx.masterKey, ctx.random);
  await refreshScopes(ctx, scopes);
  const configuration: Configuration = {
    // Loading a client reads the registered scopes anyway: they refresh the live set there too, so a
    // node that never served an authorization (the token endpoint of another node) validates the
    // client's scope allow-list against the same registrations.
    adapter: adapterFor(
      () => ctx.store.oauth,
      ctx.now,
      errors,
      (registered) => {
        if (live !== undefined) setScopes(live, registered);
      },
    ) as unknown as Configuration['adapter'],
    // An account deleted since its grant answers nothing: refresh and userinfo are then refused.
    findAccount: async (_koa: unknown, sub: string) =>
      (await ctx.store.findAccountById(sub)) === undefined
        ? undefined
        : { accountId: sub, claims: async () => ({ sub }) },
    jwks: { keys: [signingKey] as never },
    cookies: { keys: cookieKeys },
    scopes: scopes as unknown as string[],
    claims: { openid: ['sub'] },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: {
        enabled: true,
        // A public client may introspect its own tokens only.
        allowedPolicy: async (_koa: unknown, client: { clientId: string }, token: { clientId?: string }) =>
          token.clientId === client.clientId,
      },
    },
    // Every client is public, and PKCE (S256, the only method oidc-provider v9 accepts) is required of all.
    pkce: { required: () => true },
    // The code flow only, for public clients only: discovery then promises nothing else (no implicit
    // flow, which would put tokens in URLs, and no client secrets, which no client here has).
    responseTypes: ['code'],
    clientAuthMethods: ['none'],
    allowOmittingSingleRegisteredRedirectUri: false,
    extraParams: {
      keys_jwk(_koa: KoaContextWithOIDC, value: string | undefined) {
        if (value === undefined) return;
        try {
          parseKeysJwk(value);
        } catch (error) {
          // The app hears of it as OAuth says: error=invalid_request, with our reason as its description.
          throw new errors.InvalidRequest(error instanceof LatchkeyError ? error.message : 'keys_jwk is malformed');
        }
      },
    },
    interactions: {
      url: (_koa: unknown, interaction: { uid: string }) => `${INTERACTION_PREFIX}/${interaction.uid}`,
      policy: keysNeedConsent(oidc),
    },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    rotateRefreshToken: true,
    ttl: {
      AuthorizationCode: CODE_TTL_SECONDS,
      AccessToken: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 14 * 24 * 3600,
      Grant: 365 * 24 * 3600,
      RefreshToken: 30 * 24 * 3600,
    },
    // Errors go back as OAuth's JSON, never an HTML page with the request echoed into it.
    renderError: async (koa: KoaContextWithOIDC, out: Record<string, unknown>) => {
      koa.type = 'json';
      koa.body = out;
    },
  };
  let live: ScopeSet | undefined;
  const provider = new oidc.default(issuer, configuration);
  live = await liveScopes(provider);
  // Behind a reverse proxy, X-Forwarded-Proto/Host name the URL the browser used (discovery, redirects).
  provider.proxy = ctx.config.trustProxy !== false;
  return provider;
}
