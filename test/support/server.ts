import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LatchkeyClient } from '@latchkey/client';
import { buildApp, DEFAULTS, type ServerConfig, smtpMailer } from '@latchkey/server';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { type SmtpSink, startSmtpSink } from './smtp.js';

/**
 * Cheap OPAQUE key stretching for tests, so a suite of sign-ups runs in seconds. The protocol is the
 * same; only Argon2id's cost differs. One test keeps the production default.
 */
export const TEST_KEY_STRETCHING = { 'argon2id-custom': { memory: 1024, iterations: 1, parallelism: 1 } } as const;
/**
 * The same, as `LATCHKEY_KEY_STRETCHING` spells it: the CLI and the web app pin it from there, for the
 * SDK refuses a setting this cheap from a server unless the app pinned it.
 */
export const TEST_KEY_STRETCHING_SPEC = (({ memory, iterations, parallelism }) =>
  `argon2id:m=${memory},t=${iterations},p=${parallelism}`)(TEST_KEY_STRETCHING['argon2id-custom']);

/**
 * Every rate limit of the server lifted, for tests whose subject is something a limit would answer
 * first (a code's own attempt count, a race). Built from the server's DEFAULTS, so a limit added there
 * is lifted here too.
 */
export const UNLIMITED_RATE_LIMITS = Object.fromEntries(
  Object.keys(DEFAULTS.rateLimits).map((name) => [name, { max: 1_000_000, windowMs: 60_000 }]),
) as ServerConfig['rateLimits'];

export interface TestServer {
  url: string;
  app: FastifyInstance;
  smtp: SmtpSink;
  dir: string;
  config: ServerConfig;
  client(): LatchkeyClient;
  close(): Promise<void>;
}

/**
 * A real server on 127.0.0.1 with a real database (a fresh SQLite file unless `databaseUrl` is given)
 * and a real SMTP server for its mail. `options.now` replaces the server's clock, for tests of expiry.
 * `options.logStream` turns the server's own logger on (at `logLevel`, which defaults to silent) and
 * receives its JSON lines; `options.extraPlugins` adds test-only routes (see AppOptions).
 */
export async function startTestServer(
  overrides: Partial<ServerConfig> = {},
  options: {
    now?: () => number;
    logStream?: { write(line: string): void };
    extraPlugins?: readonly FastifyPluginAsync[];
  } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-test-'));
  const smtp = await startSmtpSink();
  const config: ServerConfig = {
    ...DEFAULTS,
    port: 0,
    databaseUrl: `sqlite:${join(dir, 'latchkey.db')}`,
    masterKeyFile: join(dir, 'master.key'),
    keyStretching: TEST_KEY_STRETCHING,
    logLevel: 'silent',
    // Every test signs its accounts up from 127.0.0.1: the per-address mail and registration limits
    // are tested on their own.
    rateLimits: {
      ...DEFAULTS.rateLimits,
      codeSendsPerAddress: { max: 100_000, windowMs: 60_000 },
      registerPerAddress: { max: 100_000, windowMs: 60_000 },
    },
    ...overrides,
  };
  const app = await buildApp({
    config,
    mailer: smtpMailer(smtp.url, config.mailFrom),
    ...(options.logStream === undefined ? { logger: false } : { logStream: options.logStream }),
    ...(options.extraPlugins === undefined ? {} : { extraPlugins: options.extraPlugins }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const address = await app.listen({ host: '127.0.0.1', port: config.port });
  return {
    url: address,
    app,
    smtp,
    dir,
    config,
    // Pinned, as an app that runs a non-default setting must: unpinned, the SDK refuses the cheap one.
    client: () => new LatchkeyClient({ serverUrl: address, keyStretching: config.keyStretching }),
    async close() {
      await app.close();
      await smtp.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Signs up, reads the code from the mail, verifies: a ready account. */
export async function createVerifiedAccount(server: TestServer, email: string, password: string) {
  const client = server.client();
  const before = server.smtp.messages.length;
  const { accountId } = await client.signUp(email, password);
  await client.verifyEmail(email, await server.smtp.codeFor(email, { after: before }));
  return { client, accountId };
}

/** {@link createVerifiedAccount}, then a login: an account and a session on it. */
export async function createLoggedInAccount(server: TestServer, email: string, password: string) {
  const { client, accountId } = await createVerifiedAccount(server, email, password);
  return { client, accountId, session: await client.logIn(email, password) };
}

/** What the server answered: its status and its JSON body. */
export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/**
 * A request with `token` as the bearer, straight to the server, with no SDK between: what a thief of
 * the token could send, or a dishonest server could be shown to serve.
 */
export async function requestAsBearer(
  server: TestServer,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Reply> {
  const response = await fetch(new URL(path, server.url), {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
