import type Provider from 'oidc-provider';
import type { ServerContext } from '../../context.js';
import { refreshScopes, type ScopeSet } from './live-scopes.js';
import { CODE_TTL_SECONDS } from './provider.js';

/** The relayed ciphertext's model in oidc_payloads: keyed by the authorization code's jti. */
const KEYS_JWE_MODEL = 'KeysJwe';
/**
 * Discovery lists the registered scopes without loading a client. Authorization (and its resume) needs
 * no refresh here: it loads the client before it checks scopes, and loading a client refreshes them
 * (clients.ts), so reading them here too read them twice per request.
 */
const DISCOVERY = '/.well-known/openid-configuration';

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
    // Before routing: discovery sees the live registrations.
    if (koa.path === DISCOVERY) await refreshScopes(ctx, scopes);
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
