import type { KeyStretchingConfig } from '@latchkey/core';

/** Limits on attempts, each a count within a fixed window. */
export interface RateLimit {
  max: number;
  windowMs: number;
}

export interface ServerConfig {
  host: string;
  port: number;
  /** `sqlite:<path>` or `postgres://…`. */
  databaseUrl: string;
  /** 32 random bytes, created with mode 0600 on first start when missing. */
  masterKeyFile: string;
  /** The built web app to serve at `/`, if any. */
  webDir: string | undefined;
  /** `smtp://user:pass@host:port` (or `smtps://`); without it, mail is printed to the log. */
  smtpUrl: string | undefined;
  mailFrom: string;
  keyStretching: KeyStretchingConfig;
  logLevel: string;
  bodyLimitBytes: number;
  rateLimits: {
    loginPerAccount: RateLimit;
    loginPerAddress: RateLimit;
    codeSendsPerEmail: RateLimit;
  };
}

export const DEFAULTS: ServerConfig = {
  host: '127.0.0.1',
  port: 8470,
  databaseUrl: 'sqlite:./data/latchkey.db',
  masterKeyFile: './data/master.key',
  webDir: undefined,
  smtpUrl: undefined,
  mailFrom: 'Latchkey <no-reply@latchkey.invalid>',
  keyStretching: 'memory-constrained',
  logLevel: 'info',
  bodyLimitBytes: 64 * 1024,
  rateLimits: {
    loginPerAccount: { max: 10, windowMs: 15 * 60_000 },
    loginPerAddress: { max: 60, windowMs: 60_000 },
    codeSendsPerEmail: { max: 5, windowMs: 60 * 60_000 },
  },
};

/** Reads `argon2id:m=65536,t=3,p=4` or a named preset into the OPAQUE key-stretching config. */
export function parseKeyStretching(text: string): KeyStretchingConfig {
  if (text === 'memory-constrained' || text === 'rfc-recommended') return text;
  const match = /^argon2id:m=(\d+),t=(\d+),p=(\d+)$/.exec(text);
  if (match === null) {
    throw new Error(`key stretching must be memory-constrained, rfc-recommended or argon2id:m=…,t=…,p=… (got ${text})`);
  }
  return {
    'argon2id-custom': { memory: Number(match[1]), iterations: Number(match[2]), parallelism: Number(match[3]) },
  };
}

/**
 * The configuration from the environment (`LATCHKEY_*`), overridden by explicit options (CLI flags),
 * over safe defaults: loopback only, SQLite under ./data, mail to the log.
 */
export function loadConfig(env: NodeJS.ProcessEnv, overrides: Partial<ServerConfig> = {}): ServerConfig {
  const fromEnv: Partial<ServerConfig> = {};
  if (env.LATCHKEY_HOST) fromEnv.host = env.LATCHKEY_HOST;
  if (env.LATCHKEY_PORT) fromEnv.port = parsePort(env.LATCHKEY_PORT);
  if (env.LATCHKEY_DB) fromEnv.databaseUrl = env.LATCHKEY_DB;
  if (env.LATCHKEY_MASTER_KEY_FILE) fromEnv.masterKeyFile = env.LATCHKEY_MASTER_KEY_FILE;
  if (env.LATCHKEY_WEB_DIR) fromEnv.webDir = env.LATCHKEY_WEB_DIR;
  if (env.LATCHKEY_SMTP_URL) fromEnv.smtpUrl = env.LATCHKEY_SMTP_URL;
  if (env.LATCHKEY_MAIL_FROM) fromEnv.mailFrom = env.LATCHKEY_MAIL_FROM;
  if (env.LATCHKEY_KEY_STRETCHING) fromEnv.keyStretching = parseKeyStretching(env.LATCHKEY_KEY_STRETCHING);
  if (env.LATCHKEY_LOG_LEVEL) fromEnv.logLevel = env.LATCHKEY_LOG_LEVEL;
  return { ...DEFAULTS, ...fromEnv, ...overrides };
}

export function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`not a port number: ${text}`);
  return port;
}
