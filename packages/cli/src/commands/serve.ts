import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServerConfig } from '@latchkey/server';
import { type Args, type Command, usageError } from '../command.js';
import type { Output } from '../output.js';

type ServerModule = typeof import('@latchkey/server');

/** The repository's built web app, served by default when it exists (as after `npm run build:web`). */
const REPO_WEB_DIR = fileURLToPath(new URL('../../../web/dist', import.meta.url));

/** Each flag and the config field it sets; the environment variable of the same setting is in the help. */
const FLAGS = {
  db: { env: 'LATCHKEY_DB', value: 'URL', description: 'sqlite:<path> or postgres://user:pass@host/db' },
  host: { env: 'LATCHKEY_HOST', value: 'ADDRESS', description: 'address to listen on' },
  port: { env: 'LATCHKEY_PORT', value: 'PORT', description: 'port to listen on (0: any free port)' },
  'master-key': { env: 'LATCHKEY_MASTER_KEY_FILE', value: 'FILE', description: 'master key file (made 0600)' },
  smtp: {
    env: 'LATCHKEY_SMTP_URL',
    value: 'URL',
    description: 'smtp://user:pass@host:port (default: codes to the log)',
  },
  'mail-from': { env: 'LATCHKEY_MAIL_FROM', value: 'ADDRESS', description: 'sender of the codes' },
  'key-stretching': {
    env: 'LATCHKEY_KEY_STRETCHING',
    value: 'SPEC',
    description: "OPAQUE's Argon2id: memory-constrained, rfc-recommended or argon2id:m=…,t=…,p=…",
  },
  web: {
    env: 'LATCHKEY_WEB_DIR',
    value: 'DIR',
    description: 'built web app to serve (default packages/web/dist if built)',
  },
  'log-level': { env: 'LATCHKEY_LOG_LEVEL', value: 'LEVEL', description: 'pino level: fatal … trace, or silent' },
} as const;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the Latchkey server: the API, its OpenAPI document at /docs, and the web app',
  options: Object.fromEntries(
    Object.entries(FLAGS).map(([name, flag]) => [
      name,
      { type: 'string', value: flag.value, description: `${flag.description} [${flag.env}]` },
    ]),
  ),
  details:
    'Flags override the environment variables in brackets. SIGINT or SIGTERM closes the server\n' +
    'gracefully (exit 0); a second signal exits at once.',
  async run(ctx) {
    // Loaded here, not at the top: the account commands should not pay for Fastify and the database drivers.
    const server = await import('@latchkey/server');
    const config = serverConfig(server, ctx.args, ctx.env);
    // Logs go to stderr: stdout carries the command's result alone (one JSON document under --json).
    const app = await server.buildApp({ config, logStream: process.stderr });
    const url = await app.listen({ host: config.host, port: config.port });
    ctx.out.result({ url, web: config.webDir ?? null }, `Latchkey listening on ${url}`);
    closeOnSignals(app, ctx.out);
  },
};

/** The environment, then the flags, over the defaults; the repo's web build when neither names one. */
function serverConfig(server: ServerModule, args: Args, env: NodeJS.ProcessEnv): ServerConfig {
  try {
    const config = server.loadConfig(env, flagOverrides(server, args));
    if (config.webDir === undefined && existsSync(`${REPO_WEB_DIR}/index.html`)) config.webDir = REPO_WEB_DIR;
    return config;
  } catch (error) {
    throw usageError((error as Error).message);
  }
}

function flagOverrides(server: ServerModule, args: Args): Partial<ServerConfig> {
  const overrides: Partial<ServerConfig> = {};
  const db = args.string('db');
  const host = args.string('host');
  const port = args.string('port');
  const masterKey = args.string('master-key');
  const smtp = args.string('smtp');
  const mailFrom = args.string('mail-from');
  const keyStretching = args.string('key-stretching');
  const web = args.string('web');
  const logLevel = args.string('log-level');
  if (db !== undefined) overrides.databaseUrl = db;
  if (host !== undefined) overrides.host = host;
  if (port !== undefined) overrides.port = server.parsePort(port);
  if (masterKey !== undefined) overrides.masterKeyFile = masterKey;
  if (smtp !== undefined) overrides.smtpUrl = smtp;
  if (mailFrom !== undefined) overrides.mailFrom = mailFrom;
  if (keyStretching !== undefined) overrides.keyStretching = server.parseKeyStretching(keyStretching);
  if (web !== undefined) overrides.webDir = web;
  if (logLevel !== undefined) overrides.logLevel = logLevel;
  return overrides;
}

/**
 * Graceful shutdown: the first SIGINT or SIGTERM closes the server (in-flight requests finish, new
 * ones get LK_UNAVAILABLE, storage closes) and exits 0; a second signal exits at once.
 */
function closeOnSignals(app: Awaited<ReturnType<ServerModule['buildApp']>>, out: Output): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) process.exit(1);
    closing = true;
    out.note(`${signal}: shutting down (send it again to stop at once)`);
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
