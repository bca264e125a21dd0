import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LatchkeyError } from '@latchkey/core';
import type { ServerConfig } from '@latchkey/server';
import { type Args, type Command, usageError } from '../command.js';
import type { Output } from '../output.js';

type ServerModule = typeof import('@latchkey/server');

/** The repository's built web app, served by default when it exists (as after `npm run build:web`). */
const REPO_WEB_DIR = fileURLToPath(new URL('../../../web/dist', import.meta.url));

/** Each flag and the environment variable it overrides (both parsed by loadConfig, so they accept the same). */
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
  'public-url': {
    env: 'LATCHKEY_PUBLIC_URL',
    value: 'URL',
    description: 'the URL users reach the server at, behind any proxy (the OAuth issuer is it plus /oauth)',
  },
  'trust-proxy': {
    env: 'LATCHKEY_TRUST_PROXY',
    value: 'LIST',
    description: 'proxies (addresses, CIDRs) whose X-Forwarded-For names the client; only behind one (default false)',
  },
  'cors-origins': {
    env: 'LATCHKEY_CORS_ORIGINS',
    value: 'LIST',
    description: 'web origins (https://app.example) whose pages may call the API with the SDK (default none)',
  },
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
    let url: string;
    try {
      url = await app.listen({ host: config.host, port: config.port });
    } catch (error) {
      // Storage is open by now: close it, so the process ends with the error instead of lingering.
      await app.close();
      throw listenError(error, config.host, config.port);
    }
    ctx.out.result({ url, web: config.webDir ?? null }, `Latchkey listening on ${url}`);
    closeOnSignals(app, ctx.out);
  },
};

/** A port taken by another program is LK_PORT_IN_USE, named with its address and the way out. */
function listenError(error: unknown, host: string, port: number): unknown {
  if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') return error;
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new LatchkeyError(
    'LK_PORT_IN_USE',
    `Cannot listen on ${address}: another program (perhaps another latchkey serve) is using port ${port}. ` +
      'Stop it, or pick another port with --port PORT (or LATCHKEY_PORT); --port 0 takes any free one.',
    { host, port },
  );
}

/**
 * The environment, then the flags, over the defaults; the repo's web build when neither names one.
 * Each flag stands in for its variable, so both go through the one parser. A bad flag is LK_USAGE
 * (exit status 2); a bad variable is LK_CONFIG_INVALID naming it.
 */
function serverConfig(server: ServerModule, args: Args, env: NodeJS.ProcessEnv): ServerConfig {
  const fromFlags = flagsAsEnv(args);
  let config: ServerConfig;
  try {
    config = server.loadConfig({ ...env, ...fromFlags });
  } catch (error) {
    throw asFlagError(error, fromFlags);
  }
  if (config.webDir === undefined && existsSync(`${REPO_WEB_DIR}/index.html`)) config.webDir = REPO_WEB_DIR;
  return config;
}

/** The flags given, as the environment variables they override. */
function flagsAsEnv(args: Args): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, flag] of Object.entries(FLAGS)) {
    const value = args.string(name);
    if (value === undefined) continue;
    // An empty variable means "unset"; an empty flag is a mistake, not a request for the default.
    if (value === '') throw usageError(`--${name} needs a value (see latchkey serve --help)`);
    vars[flag.env] = value;
  }
  return vars;
}

/** A setting refused because of a flag becomes a usage error naming the flag. */
function asFlagError(error: unknown, fromFlags: Record<string, string>): unknown {
  if (!(error instanceof LatchkeyError) || error.code !== 'LK_CONFIG_INVALID') return error;
  const setting = error.details?.setting;
  const flag = Object.entries(FLAGS).find(([, spec]) => spec.env === setting);
  if (typeof setting !== 'string' || flag === undefined || fromFlags[setting] === undefined) return error;
  const reason = error.message.startsWith(`${setting}: `) ? error.message.slice(setting.length + 2) : error.message;
  return usageError(`--${flag[0]}: ${reason}`);
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
