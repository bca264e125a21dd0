import type Provider from 'oidc-provider';
import type { ServerContext } from '../../context.js';
import { CODE_TTL_SECONDS, refreshScopes, type ScopeSet } from './provider.js';

/** The relayed ciphertext's model in oidc_payloads: keyed by the authorization code's jti. */
const KEYS_JWE_MODEL = 'KeysJwe';
/** The endpoints that read the registered scopes: authorization (and its resume) and discovery. */
const SCOPE_READERS = /^\/(auth(\/|$)|\.well-known\/openid-configuration$)/;

/**
 * The keys_jwe relay through oidc-provider's documented middleware hook (issue 9). On `resume`, once
 * the code is issued, the keys_jwe the consent page posted (kept in the interaction's result) is stored
 * under the code's jti for the code's lifetime: the code model persists only its own fields. On a
 * successful `token` exchange of that code it is taken (deleted in the same statement) and answered
 * beside access_token, so it is delivered once, to the request that redeemed the code. The server
 * never holds more than the opaque ciphertext.
 */
export function installKeysRelay(provider: Provider, ctx: ServerContext, scopes: ScopeSet): void {
  provider.use(async (koa, next) => {
    // Before routing: authorization and discovery see the live registrations.
    if (SCOPE_READERS.test(koa.path)) await refreshScopes(ctx, scopes);
    await next();
    const { route, entities } = koa.oidc ?? { entities: {} };
    const code = entities.AuthorizationCode;
    if (code === undefined) return;
    if (route === 'resume') {
      const keysJwe = entities.Interaction?.result?.keysJwe;
      if (typeof keysJwe !== 'string') return;
      await ctx.store.oauth.upsertPayload({
        model: KEYS_JWE_MODEL,
        id: code.jti,
        payload: JSON.stringify({ keysJwe }),
        grant_id: null,
        uid: null,
        user_code: null,
        account_id: null,
        // The code entity is saved with its lifetime but does not carry it: the same TTL from now.
        expires_at: ctx.now() + CODE_TTL_SECONDS * 1000,
        consumed_at: null,
      });
    } else if (route === 'token' && koa.status === 200) {
      const row = await ctx.store.oauth.takePayload(KEYS_JWE_MODEL, code.jti, ctx.now());
      if (row === undefined) return;
      const { keysJwe } = JSON.parse(row.payload) as { keysJwe: string };
      koa.body = { ...(koa.body as Record<string, unknown>), keys_jwe: keysJwe };
    }
  });
}
