import middie from '@fastify/middie';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { installKeysRelay } from './keys-relay.js';
import { createProvider, liveScopes, OAUTH_PREFIX } from './provider.js';
import { oauthRoutes } from './routes.js';

/**
 * The oauth module (issue 9): oidc-provider mounted at /oauth with @fastify/middie (its documented
 * Fastify integration), and the consent page's API beside it.
 */
export async function oauthModule(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const provider = await createProvider(ctx);
  installKeysRelay(provider, ctx, await liveScopes(provider));
  // oidc-provider answers server_error without detail (as our LK_INTERNAL does); the log gets the cause.
  provider.on('server_error', (_koa, error) => app.log.error({ err: error }, 'oauth server error'));
  await app.register(middie);
  app.use(OAUTH_PREFIX, provider.callback());
  // middie runs in this plugin's onRequest hook, which Fastify runs only for routes of this plugin: these
  // catch-alls make /oauth/* such routes. oidc-provider answers in the hook; the handlers never run.
  for (const url of [OAUTH_PREFIX, `${OAUTH_PREFIX}/*`]) {
    app.all(url, { schema: { hide: true } }, async (_request, reply) => reply.hijack());
  }
  await app.register(oauthRoutes, { ctx, provider });
}
