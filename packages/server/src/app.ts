import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { MAX_ID_LENGTH, ServerConfigResponse } from '@latchkey/core';
import { Type } from '@sinclair/typebox';
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import { registerBrowserPolicy, swaggerUiCsp } from './browser-policy.js';
import type { ServerConfig } from './config.js';
import type { ServerContext } from './context.js';
import { frameworkErrors, installErrorHandling, refuseWhileClosing } from './http-errors.js';
import { rejectUnstorableInput } from './input-hygiene.js';
import { logMailer, type Mailer, smtpMailer } from './mail/mailer.js';
import { outbox } from './mail/outbox.js';
import { loadOrCreateMasterKey } from './master-key.js';
import { loadOrCreateOpaqueSetup } from './modules/accounts/opaque-setup.js';
import { accountsRoutes } from './modules/accounts/routes.js';
import { MATRIX_PREFIX, matrixBackupRoutes, redactAccessToken } from './modules/backup/matrix-routes.js';
import { backupRoutes } from './modules/backup/routes.js';
import { oauthModule } from './modules/oauth/index.js';
import { secretsRoutes } from './modules/secrets/routes.js';
import { defaultLogOrigin, openTransparencyLog, transparencyLogRoutes } from './modules/transparency-log/index.js';
import { prettyLogStream } from './pretty-log.js';
import { route } from './route.js';
import { connect } from './store/database.js';
import { openStore } from './store/kysely-store.js';

export const VERSION = '0.1.0';

/** How long closing waits for mail still being sent (nodemailer's own timeouts run to minutes). */
const MAIL_DRAIN_MS = 10_000;

export interface AppOptions {
  config: ServerConfig;
  /** Replaces the configured mailer (tests pass an SMTP one pointing at their own server). */
  mailer?: Mailer;
  /** Pino options or `false`; defaults to JSON logs at the configured level. */
  logger?: boolean | object;
  /**
   * Where the default logger writes its JSON lines (pino's default, stdout, when absent). The CLI
   * passes stderr, keeping stdout for its result; tests pass an array to read the log. A terminal
   * (`isTTY`) gets lines formatted for people, with mail printed by the development mailer framed so
   * its code is seen at once; anything else gets pino's JSON lines. Ignored when `logger` is given.
   */
  logStream?: { write(line: string): void; isTTY?: boolean };
  /**
   * For tests only: plugins registered after every module, under the same error handling and hooks,
   * for routes that throw or stall on demand, given the server's context (a test appends to the
   * transparency log through it). Production code never passes any.
   */
  extraPlugins?: readonly FastifyPluginAsync<{ ctx: ServerContext }>[];
  now?: () => number;
}

/**
 * Builds the server: opens storage (migrating it), loads keys, and registers every module as a
 * Fastify plugin. The caller listens; {@link FastifyInstance.close} shuts everything down in order.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    logger: options.logger ?? {
      level: config.logLevel,
      // Belt and braces: nothing secret is logged on purpose, and these never reach a log line.
      redact: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.token'],
      // Fastify's own request serializer, but the Matrix routes' `?access_token=` never reaches a log.
      serializers: {
        req: (request: FastifyRequest) => ({
          method: request.method,
          url: redactAccessToken(request.url),
          host: request.host,
          remoteAddress: request.ip,
          remotePort: request.socket?.remotePort,
        }),
      },
      ...(options.logStream === undefined ? {} : { stream: forTerminal(options.logStream) }),
    },
    bodyLimit: config.bodyLimitBytes,
    // Room and session ids run to 255 characters, and escaping can triple that in a path segment;
    // Fastify's default (100) would answer long ids as if the route did not exist.
    routerOptions: { maxParamLength: MAX_ID_LENGTH * 3 },
    // Only the configured proxies may name the client in X-Forwarded-For; it keys the per-address rate limits.
    trustProxy: config.trustProxy,
    // Reject rather than repair: no type coercion, no silent removal of unknown fields.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    // Off: Fastify's own 503 has its own body shape; refuseWhileClosing answers LK_UNAVAILABLE instead.
    return503OnClosing: false,
    frameworkErrors,
  });
  installErrorHandling(app);
  // First of all hooks, so that every answer (a refusal while closing included) carries the headers.
  await registerBrowserPolicy(app, config.corsOrigins);
  refuseWhileClosing(app);
  // JSON only: Fastify's built-in text/plain parser would hand a string to routes (and a route with no
  // body schema would run on it); without it, other media types get LK_UNSUPPORTED_MEDIA_TYPE.
  app.removeContentTypeParser('text/plain');
  app.addHook('preValidation', rejectUnstorableInput);

  const connection = connect(config.databaseUrl);
  const store = await openStore(connection);
  const masterKey = loadOrCreateMasterKey(config.masterKeyFile);
  const random = (length: number) => new Uint8Array(randomBytes(length));
  const mailer = options.mailer ?? (config.smtpUrl ? smtpMailer(config.smtpUrl, config.mailFrom) : logMailer(app.log));
  const now = options.now ?? Date.now;
  const transparencyLog = await openTransparencyLog({
    store,
    masterKey,
    origin: config.logOrigin,
    defaultOrigin: defaultLogOrigin(config),
    random,
    now,
    onError: (err) => app.log.error({ err }, 'transparency log batch failed'),
  });
  // The verifier key is what clients and witnesses pin: printed at every start, served at /v1/log/key.
  app.log.info(
    { origin: transparencyLog.origin, verifierKey: transparencyLog.verifierKey, size: transparencyLog.size },
    'transparency log ready',
  );
  const ctx: ServerContext = {
    store,
    masterKey,
    opaqueSetup: await loadOrCreateOpaqueSetup(store, masterKey, random),
    mailer,
    outbox: outbox(mailer, app.log),
    config,
    transparencyLog,
    now,
    random,
  };
  app.log.info({ database: connection.location, mail: config.smtpUrl ? 'smtp' : 'log' }, 'storage ready');

  app.addHook('onClose', async () => {
    // Requests have finished by now; mail they left on its way gets a while to go before the mailer closes.
    const unsent = await ctx.outbox.drain(MAIL_DRAIN_MS);
    if (unsent > 0) app.log.error({ unsent }, 'closing with mail still unsent');
    mailer.close();
    // Appends already queued are written (and acknowledged) before the database closes.
    await transparencyLog.close();
    await store.close();
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Latchkey', version: VERSION, description: 'End-to-end-encrypted key service.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', ...swaggerUiCsp });

  const r = route(app, ctx);
  r.get('/health', {
    tag: 'server',
    summary: 'Liveness and database reachability',
    reply: Type.Object({ status: Type.Literal('ok'), version: Type.String() }),
    handler: async () => {
      await store.getServerSecret('opaque_server_setup');
      return { status: 'ok' as const, version: VERSION };
    },
  });
  r.get('/v1/config', {
    tag: 'server',
    summary: 'What every client of this server must agree on',
    reply: ServerConfigResponse,
    handler: async () => ({ keyStretching: config.keyStretching, version: VERSION }),
  });
  await app.register(accountsRoutes, { ctx });
  await app.register(backupRoutes, { ctx });
  await app.register(matrixBackupRoutes, { ctx, prefix: MATRIX_PREFIX });
  await app.register(secretsRoutes, { ctx });
  await app.register(oauthModule, { ctx });
  await app.register(transparencyLogRoutes, { ctx });
  for (const plugin of options.extraPlugins ?? []) await app.register(plugin, { ctx });
  await registerWebApp(app, config.webDir);

  // Expired attempts, codes, sessions and rate-limit windows are swept now and then; correctness
  // never depends on it.
  const longestWindowMs = Math.max(...Object.values(config.rateLimits).map((limit) => limit.windowMs));
  const sweep = setInterval(
    () => void store.purgeExpired(ctx.now(), longestWindowMs).catch((err) => app.log.error({ err }, 'purge failed')),
    60_000,
  );
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));
  return app;
}

/** A person at a terminal reads formatted lines; a file, pipe or log collector gets JSON. */
function forTerminal(stream: { write(line: string): void; isTTY?: boolean }): { write(line: string): void } {
  return stream.isTTY === true ? prettyLogStream(stream) : stream;
}

/** Serves the built web app at `/`. It routes by URL hash (`#/login`), so no path needs a fallback. */
async function registerWebApp(app: FastifyInstance, webDir: string | undefined): Promise<void> {
  if (webDir === undefined) return;
  const root = resolve(webDir);
  if (!existsSync(resolve(root, 'index.html'))) {
    app.log.warn({ webDir: root }, 'web app not built: run `npm run build:web`');
    return;
  }
  await app.register(fastifyStatic, { root, wildcard: false, index: ['index.html'] });
}
