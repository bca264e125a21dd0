import type { AddressInfo } from 'node:net';
import middie from '@fastify/middie';
import type { FastifyInstance } from 'fastify';
import type Provider from 'oidc-provider';
import type { ServerContext } from '../../context.js';
import { installKeysRelay } from './keys-relay.js';
import { liveScopes } from './live-scopes.js';
import { createProvider, issuerOf, OAUTH_PREFIX } from './provider.js';
import { oauthRoutes } from './routes.js';
import { loadOrCreateOauthSecrets } from './signing-keys.js';

/** oidc-provider once built, with its Node request handler. */
export interface MountedProvider {
  provider: Provider;
  callback: ReturnType<Provider['callback']>;
}

/**
 * The oauth module (issue 9): oidc-provider mounted at /oauth with @fastify/middie (its documented
 * Fastify integration), and the consent page's API beside it.
 */
export async function oauthModule(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const mounted = mountOnce(app, ctx);
  // With a known issuer the provider is built now, so a fault in its set-up stops the start. On port 0
  // without a public URL the issuer's port is known only once the server listens: it is built then,
  // at the first request, rather than naming port 0 in discovery and in every token's `iss`.
  if (ctx.config.publicUrl !== undefined || ctx.config.port !== 0) await mounted();
  // Either way the start creates the OAuth secrets, so no request (refused or not) writes them later.
  else await loadOrCreateOauthSecrets(ctx.store, ctx.masterKey, ctx.random);
  await app.register(middie);
  app.use(OAUTH_PREFIX, (req, res, next) => {
    mounted().then(({ callback }) => callback(req, res), next);
  });
  // middie runs in this plugin's onRequest hook, which Fastify runs only for routes of this plugin: these
  // catch-alls make /oauth/* such routes. oidc-provider answers in the hook; the handlers never run.
  for (const url of [OAUTH_PREFIX, `${OAUTH_PREFIX}/*`]) {
    app.all(url, { schema: { hide: true } }, async (_request, reply) => reply.hijack());
  }
  await app.register(oauthRoutes, { ctx, provider: async () => (await mounted()).provider });
}

/** Builds the provider on the first call (every later call shares it), under the issuer known by then. */
function mountOnce(app: FastifyInstance, ctx: ServerContext): () => Promise<MountedProvider> {
  let mounting: Promise<MountedProvider> | undefined;
  const mount = async (): Promise<MountedProvider> => {
    const listening = app.server.listening ? (app.server.address() as AddressInfo).port : undefined;
    const provider = await createProvider(ctx, issuerOf(ctx, listening));
    installKeysRelay(provider, ctx, await liveScopes(provider));
    // oidc-provider answers server_error without detail (as our LK_INTERNAL does); the log gets the cause.
    provider.on('server_error', (_koa, error) => app.log.error({ err: error }, 'oauth server error'));
    return { provider, callback: provider.callback() };
  };
  return () => {
    // A failed build is not kept: the next request tries again (the database may be back).
    mounting ??= mount().catch((error: unknown) => {
      mounting = undefined;
      throw error;
    });
    return mounting;
  };
}
