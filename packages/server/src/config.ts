import { isIP } from 'node:net';
import {
  isValidKeyName,
  type KeyStretchingConfig,
  LatchkeyError,
  LOGIN_RATE_LIMITS,
  parseKeyStretching,
  type RateLimit,
  REGISTRATION_RATE_LIMITS,
} from '@latchkey/core';

/** Limits on attempts, each a count within a fixed window. */
export type { RateLimit };

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
  /**
   * The reverse proxies whose `X-Forwarded-For` names the client (addresses, CIDR ranges, or
   * `loopback`, `linklocal`, `uniquelocal`), or `false`: the peer is the client. The client address
   * keys the per-address rate limits, so behind a proxy without this every user shares one bucket.
   */
  trustProxy: false | string[];
  /**
   * The web origins (`https://app.example`) whose pages may call the API with the SDK (CORS). None by
   * default: only the server's own web app, on its own origin, can. The Matrix routes answer any
   * origin, as their spec asks.
   */
  corsOrigins: string[];
  /**
   * The URL users and apps reach this server at (`https://keys.example.org`), behind any proxy: the
   * OAuth issuer is this plus `/oauth`. Defaults to `http://<host>:<port>`.
   */
  publicUrl: string | undefined;
  /**
   * The transparency log's origin (issue 10): the first line of its checkpoints and its key's name,
   * fixed for the log's life. Defaults to where its tiles are served without the scheme
   * (`keys.example.org/log`, as c2sp.org/tlog-tiles recommends), from `publicUrl`.
   */
  logOrigin: string | undefined;
  bodyLimitBytes: number;
  /** The login limits and why they are as they are: LOGIN_RATE_LIMITS in @latchkey/core. */
  rateLimits: {
    /** Login starts from one address (a flood guard; a known device is not counted). */
    loginPerAddress: RateLimit;
    /** Unproven login guesses at one account from one address. */
    loginPerAccountAddress: RateLimit;
    /** Unproven login guesses at one account from every client without a device token. */
    loginPerAccount: RateLimit;
    /** Unproven login guesses with one device token. */
    loginPerDevice: RateLimit;
    /** Unproven reauthentications of one session. */
    reauthPerSession: RateLimit;
    /** Registration starts from one address (a flood guard). */
    registerPerAddress: RateLimit;
    /** Registration starts for one email. */
    registerPerEmail: RateLimit;
    codeSendsPerEmail: RateLimit;
    /** Code mails asked for from one address, whatever the emails: one client cannot mail the world. */
    codeSendsPerAddress: RateLimit;
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
  trustProxy: false,
  corsOrigins: [],
  publicUrl: undefined,
  logOrigin: undefined,
  bodyLimitBytes: 64 * 1024,
  rateLimits: {
    loginPerAddress: LOGIN_RATE_LIMITS.startsPerAddress,
    loginPerAccountAddress: LOGIN_RATE_LIMITS.guessesPerAccountAddress,
    loginPerAccount: LOGIN_RATE_LIMITS.guessesPerAccount,
    loginPerDevice: LOGIN_RATE_LIMITS.guessesPerDevice,
    reauthPerSession: LOGIN_RATE_LIMITS.reauthPerSession,
    registerPerAddress: REGISTRATION_RATE_LIMITS.startsPerAddress,
    registerPerEmail: REGISTRATION_RATE_LIMITS.startsPerEmail,
    codeSendsPerEmail: { max: 5, windowMs: 60 * 60_000 },
    codeSendsPerAddress: { max: 50, windowMs: 60 * 60_000 },
  },
};

/** Each environment variable and how its text becomes settings; an unset or empty variable keeps the default. */
const FROM_ENV: ReadonlyArray<readonly [string, (text: string) => Partial<ServerConfig>]> = [
  ['LATCHKEY_HOST', (text) => ({ host: parseHost(text) })],
  ['LATCHKEY_PORT', (text) => ({ port: parsePort(text) })],
  ['LATCHKEY_DB', (text) => ({ databaseUrl: parseDatabaseUrl(text) })],
  ['LATCHKEY_MASTER_KEY_FILE', (text) => ({ masterKeyFile: text })],
  ['LATCHKEY_WEB_DIR', (text) => ({ webDir: text })],
  ['LATCHKEY_SMTP_URL', (text) => ({ smtpUrl: parseSmtpUrl(text) })],
  ['LATCHKEY_MAIL_FROM', (text) => ({ mailFrom: parseMailFrom(text) })],
  ['LATCHKEY_KEY_STRETCHING', (text) => ({ keyStretching: parseKeyStretching(text) })],
  ['LATCHKEY_LOG_LEVEL', (text) => ({ logLevel: parseLogLevel(text) })],
  ['LATCHKEY_TRUST_PROXY', (text) => ({ trustProxy: parseTrustProxy(text) })],
  ['LATCHKEY_CORS_ORIGINS', (text) => ({ corsOrigins: parseCorsOrigins(text) })],
  ['LATCHKEY_PUBLIC_URL', (text) => ({ publicUrl: parsePublicUrl(text) })],
  ['LATCHKEY_LOG_ORIGIN', (text) => ({ logOrigin: parseLogOrigin(text) })],
];

/** A note key name (c2sp.org/signed-note): no spaces, no "+"; by convention a URL without its scheme. */
function parseLogOrigin(text: string): string {
  if (!isValidKeyName(text) || /^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw new LatchkeyError(
      'LK_CONFIG_INVALID',
      'LATCHKEY_LOG_ORIGIN must be one word with no "+" and no scheme, such as keys.example.org/log',
    );
  }
  return text;
}

function parsePublicUrl(text: string): string {
  if (!/^https?:\/\/[^/?#]+\/?$/.test(text) || !URL.canParse(text)) {
    throw new LatchkeyError('LK_CONFIG_INVALID', 'LATCHKEY_PUBLIC_URL must be http(s)://host[:port] with no path');
  }
  return text.replace(/\/$/, '');
}

/**
 * The configuration from the environment (`LATCHKEY_*`), overridden by explicit options, over safe
 * defaults: loopback only, SQLite under ./data, mail to the log, no proxy trusted. A value that cannot
 * be used is `LK_CONFIG_INVALID` with `details.setting` naming the variable, refused at start rather
 * than failing on the first request.
 */
export function loadConfig(env: NodeJS.ProcessEnv, overrides: Partial<ServerConfig> = {}): ServerConfig {
  const fromEnv: Partial<ServerConfig> = {};
  for (const [name, parse] of FROM_ENV) {
    const text = env[name];
    if (!text) continue;
    try {
      Object.assign(fromEnv, parse(text));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      // A reader shared with the clients (core's parseKeyStretching) has its own code: kept as the cause.
      const cause = error instanceof LatchkeyError && error.code !== 'LK_CONFIG_INVALID' ? { cause: error.code } : {};
      throw new LatchkeyError('LK_CONFIG_INVALID', `${name}: ${reason}`, { setting: name, ...cause });
    }
  }
  return { ...DEFAULTS, ...fromEnv, ...overrides };
}

function invalid(reason: string): LatchkeyError {
  return new LatchkeyError('LK_CONFIG_INVALID', reason);
}

/** A decimal port, 0 to 65535 (0: any free port); `0x50`, `1e3` or ` 80` are refused, not read as numbers. */
export function parsePort(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw invalid(`not a port number: ${JSON.stringify(text)}`);
  return Number(text);
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function parseHost(text: string): string {
  if (isIP(text) === 0 && !HOSTNAME.test(text)) {
    throw invalid(`not an IP address or host name: ${JSON.stringify(text)}`);
  }
  return text;
}

/** The URL's scheme for an error message, and nothing after it: the rest may hold a password. */
function schemeOf(text: string): string {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(text)?.[1];
  return scheme === undefined ? 'no scheme' : JSON.stringify(scheme);
}

function parseDatabaseUrl(text: string): string {
  if (text.startsWith('sqlite:') && text.length > 'sqlite:'.length) return text;
  if ((text.startsWith('postgres://') || text.startsWith('postgresql://')) && URL.canParse(text)) return text;
  throw invalid(`must be sqlite:<path> or postgres://user:pass@host/db (got ${schemeOf(text)})`);
}

function parseSmtpUrl(text: string): string {
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined || (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') || url.hostname === '') {
    throw invalid(`must be smtp://user:pass@host:port or smtps://… (got ${schemeOf(text)})`);
  }
  return text;
}

function parseMailFrom(text: string): string {
  // A line break would let the setting write further mail headers.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
  if (/[\u0000-\u001f\u007f]/.test(text) || !text.includes('@')) {
    throw invalid(`not a sender address such as Latchkey <no-reply@example.com>: ${JSON.stringify(text)}`);
  }
  return text;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function parseLogLevel(text: string): string {
  if (!LOG_LEVELS.includes(text)) throw invalid(`log level must be one of ${LOG_LEVELS.join(', ')} (got ${text})`);
  return text;
}

/** proxy-addr's named ranges: 127.0.0.0/8 and ::1, 169.254.0.0/16 and fe80::/10, the private ranges. */
const NAMED_RANGES = ['loopback', 'linklocal', 'uniquelocal'];

/**
 * `false`, or a comma-separated list of the reverse proxies' addresses, CIDR ranges (`10.0.0.0/8`)
 * and named ranges. The client address is then the right-most X-Forwarded-For entry not added by a
 * listed proxy, so what a client writes into the header itself is never believed. `true` and hop
 * counts are refused: `true` would believe the left-most entry, which the client chooses, and Fastify
 * 5 ignores a hop count because it cannot tell the proxy from a client that connects directly.
 */
export function parseTrustProxy(text: string): false | string[] {
  if (text === 'false') return false;
  if (text === 'true') {
    throw invalid('true would let any client choose its address by sending X-Forwarded-For; list the proxy addresses');
  }
  if (/^\d+$/.test(text)) {
    throw invalid('a hop count cannot tell the proxy from a client connecting directly; list the proxy addresses');
  }
  const entries = text.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    if (!isProxyEntry(entry)) {
      throw invalid(
        `${JSON.stringify(entry)} is not an IP address, a CIDR range or one of ${NAMED_RANGES.join(', ')} (or give false)`,
      );
    }
  }
  return entries;
}

function isProxyEntry(entry: string): boolean {
  if (NAMED_RANGES.includes(entry)) return true;
  const [address = '', bits, extra] = entry.split('/');
  const family = isIP(address);
  // A zone index (fe80::1%eth0) is refused: proxy-addr does not read it.
  if (family === 0 || address.includes('%') || extra !== undefined) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

/**
 * A comma-separated list of web origins, each exactly as a browser sends it in `Origin`: `http` or
 * `https`, a host, a port only when not the scheme's default, and nothing after. The match is by
 * equal strings, so an entry written any other way (a path, a trailing slash, capitals) could never
 * match and is refused with the form that would. `*` and `null` are refused: the list exists so that
 * only chosen apps hold a user's session in their pages, and `null` is every sandboxed frame and file.
 */
export function parseCorsOrigins(text: string): string[] {
  const entries = text.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const problem = originProblem(entry);
    if (problem !== undefined) throw invalid(problem);
  }
  return [...new Set(entries)];
}

function originProblem(entry: string): string | undefined {
  if (entry === '*') return '* would let every web page call the API; list the origins of your apps';
  const url = URL.canParse(entry) ? new URL(entry) : undefined;
  // Named by its origin alone: what comes before the @ is a password.
  if (url !== undefined && (url.username !== '' || url.password !== '')) {
    return `an origin carries no user name or password (did you mean ${url.origin}?)`;
  }
  const notAnOrigin = `${JSON.stringify(entry)} is not a web origin`;
  if (url === undefined) return `${notAnOrigin}: write scheme://host[:port], such as https://app.example`;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `${notAnOrigin}: the scheme must be http or https, not ${url.protocol}`;
  }
  if (entry !== url.origin)
    return `${notAnOrigin}: scheme://host[:port] and nothing more (did you mean ${url.origin}?)`;
  return undefined;
}
