import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KeyStretchingConfig, LatchkeyClient, Session } from '@latchkey/client';
import { ERRORS } from '@latchkey/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliError, cliJson, lines } from '../support/cli-process.js';
import { snapshotDatabase } from '../support/db-snapshot.js';
import { asyncLatchkeyErrorOf } from '../support/errors.js';
import {
  createVerifiedAccount,
  startTestServer,
  TEST_KEY_STRETCHING_SPEC,
  type TestServer,
} from '../support/server.js';

/**
 * Issue 8: the SDK used to take whatever Argon2id setting `GET /v1/config` advertised. The attacker
 * here is anyone on the path of plain http: a real HTTP proxy in front of a real, honest server (which
 * advertises the production default, memory-constrained), passing every request through but for the
 * advertisement, which it rewrites. A client that takes the rewritten setting makes an OPAQUE record
 * (and so a wrapped kB) that is nearly free to crack, or exhausts itself stretching. Each test checks
 * the refusal's code, that nothing but the config request left the client, and that the database
 * did not change.
 */

/** The weak setting: Argon2id's minimum, 8 KiB and one pass. */
const WEAK = { 'argon2id-custom': { memory: 8, iterations: 1, parallelism: 1 } } as const;
/** The most memory Argon2id can name, 4 TiB: a client that tries it runs out of memory, or time. */
const HUGE = { 'argon2id-custom': { memory: 2 ** 32 - 1, iterations: 1, parallelism: 4 } } as const;
const PASSWORD = 'correct horse battery';

interface HostileProxy {
  url: string;
  /** `METHOD /path` of every request the proxy saw, in order. */
  seen: string[];
  /** What `/v1/config` advertises through the proxy; `undefined` passes the server's own through. */
  advertise: unknown;
  /** Answers `/v1/config` with 503 instead, as an overloaded server or a dropped connection would. */
  failConfig: boolean;
  close(): Promise<void>;
}

async function bodyOf(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A plain-http man in the middle: forwards everything to `upstream`, rewriting the advertised setting. */
async function startHostileProxy(upstream: string): Promise<HostileProxy> {
  const proxy: Omit<HostileProxy, 'url' | 'close'> = { seen: [], advertise: undefined, failConfig: false };
  const server: Server = createServer(async (request, response) => {
    proxy.seen.push(`${request.method} ${request.url}`);
    if (request.url === '/v1/config' && proxy.failConfig) {
      response.writeHead(503, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ code: 'LK_UNAVAILABLE', message: 'The server is shutting down or overloaded.' }));
      return;
    }
    const body = await bodyOf(request);
    const headers: Record<string, string> = {};
    for (const name of ['content-type', 'authorization']) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const answer = await fetch(new URL(request.url ?? '/', upstream), {
      method: request.method ?? 'GET',
      headers,
      ...(body.length === 0 ? {} : { body: new Uint8Array(body) }),
    });
    let text = await answer.text();
    if (request.url === '/v1/config' && proxy.advertise !== undefined) {
      text = JSON.stringify({ ...JSON.parse(text), keyStretching: proxy.advertise });
    }
    response.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
    response.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(proxy, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

describe('a server (or a man in the middle) advertising key stretching the client must refuse', () => {
  let server: TestServer;
  let proxy: HostileProxy;
  const database = () => join(server.dir, 'latchkey.db');
  /** A fresh client through the proxy, as each run of the CLI or each page load makes one. */
  const viaProxy = (keyStretching?: KeyStretchingConfig) =>
    new LatchkeyClient({ serverUrl: proxy.url, ...(keyStretching === undefined ? {} : { keyStretching }) });

  beforeAll(async () => {
    server = await startTestServer({ keyStretching: 'memory-constrained' });
    proxy = await startHostileProxy(server.url);
  });
  afterEach(() => {
    proxy.seen.length = 0;
    proxy.advertise = undefined;
    proxy.failConfig = false;
  });
  afterAll(async () => {
    await proxy.close();
    await server.close();
  });

  it('passes an honest advertisement through: sign-up and login work via the proxy', async () => {
    const client = viaProxy();
    const before = server.smtp.messages.length;
    await client.signUp('honest@example.com', PASSWORD);
    await client.verifyEmail('honest@example.com', await server.smtp.codeFor('honest@example.com', { after: before }));
    expect((await client.logIn('honest@example.com', PASSWORD)).kB).toHaveLength(32);
    expect(proxy.seen).toContain('POST /v1/account/register/finish');
  });

  it('refuses to sign up under 8 KiB × 1 with LK_KDF_TOO_WEAK, and sends nothing', async () => {
    proxy.advertise = WEAK;
    const before = snapshotDatabase(database());
    const error = await asyncLatchkeyErrorOf(viaProxy().signUp('weak-signup@example.com', PASSWORD));
    expect(error.code).toBe('LK_KDF_TOO_WEAK');
    expect(error.details).toEqual({ advertised: WEAK['argon2id-custom'] });
    expect(proxy.seen).toEqual(['GET /v1/config']);
    expect(snapshotDatabase(database())).toEqual(before);
  });

  it('refuses to reset under 8 KiB × 1: the code is not spent and the old record stays', async () => {
    const email = 'weak-reset@example.com';
    await createVerifiedAccount(server, email, PASSWORD);
    const honest = new LatchkeyClient({ serverUrl: server.url });
    const before = server.smtp.messages.length;
    await honest.requestReset(email);
    const code = await server.smtp.codeFor(email, { after: before });
    const snapshot = snapshotDatabase(database());

    proxy.advertise = WEAK;
    const error = await asyncLatchkeyErrorOf(viaProxy().completeReset(email, code, 'a weak new password'));
    expect(error.code).toBe('LK_KDF_TOO_WEAK');
    expect(proxy.seen).toEqual(['GET /v1/config']);
    expect(snapshotDatabase(database())).toEqual(snapshot);
    // The code was never sent, so the owner can still use it, on an honest connection.
    await honest.completeReset(email, code, 'an honest new password');
    expect((await honest.logIn(email, 'an honest new password')).kB).toHaveLength(32);
  });

  it('refuses a password change under 8 KiB × 1 before re-authenticating, and sends nothing', async () => {
    const email = 'weak-change@example.com';
    const { client: honest } = await createVerifiedAccount(server, email, PASSWORD);
    const session = await honest.logIn(email, PASSWORD);
    // The same session in a later run (a CLI command, a page load): its client reads the config anew.
    const later = new Session(viaProxy(), { ...session.state }, { kA: session.kA, kB: session.kB });
    const snapshot = snapshotDatabase(database());

    proxy.advertise = WEAK;
    expect((await asyncLatchkeyErrorOf(later.changePassword(PASSWORD, 'a weak new password'))).code).toBe(
      'LK_KDF_TOO_WEAK',
    );
    expect(proxy.seen).toEqual(['GET /v1/config']);
    expect(snapshotDatabase(database())).toEqual(snapshot);
    expect((await honest.logIn(email, PASSWORD)).kB).toEqual(session.kB);
  });

  it('refuses to log in under 8 KiB × 1 with LK_KDF_TOO_WEAK, before the first OPAQUE message', async () => {
    const email = 'weak-login@example.com';
    await createVerifiedAccount(server, email, PASSWORD);
    proxy.advertise = WEAK;
    expect((await asyncLatchkeyErrorOf(viaProxy().logIn(email, PASSWORD))).code).toBe('LK_KDF_TOO_WEAK');
    expect(proxy.seen).toEqual(['GET /v1/config']);
  });

  it('refuses a pinned client any other setting with LK_KDF_MISMATCH, even a stronger one', async () => {
    proxy.advertise = 'rfc-recommended';
    const before = snapshotDatabase(database());
    const error = await asyncLatchkeyErrorOf(viaProxy('memory-constrained').signUp('pinned@example.com', PASSWORD));
    expect(error.code).toBe('LK_KDF_MISMATCH');
    expect(proxy.seen).toEqual(['GET /v1/config']);
    expect(snapshotDatabase(database())).toEqual(before);

    // The pin matches the same parameters however they are spelled.
    proxy.advertise = { 'argon2id-custom': { memory: 65_536, iterations: 3, parallelism: 4 } };
    proxy.seen.length = 0;
    await viaProxy('memory-constrained').signUp('pinned@example.com', PASSWORD);
    expect(proxy.seen).toContain('POST /v1/account/register/finish');
  });

  it('reads the config again after a failed fetch, so a pinned client is not stuck on one blip', async () => {
    const client = viaProxy('memory-constrained');
    proxy.failConfig = true;
    expect((await asyncLatchkeyErrorOf(client.signUp('blip@example.com', PASSWORD))).code).toBe('LK_UNAVAILABLE');
    proxy.failConfig = false;
    await client.signUp('blip@example.com', PASSWORD);
    expect(proxy.seen.filter((line) => line === 'GET /v1/config')).toHaveLength(2);
  });

  it('refuses 4 TiB of memory with LK_KDF_TOO_COSTLY at once, before allocating or sending anything', async () => {
    proxy.advertise = HUGE;
    const before = snapshotDatabase(database());
    const heap = process.memoryUsage().arrayBuffers;
    const started = performance.now();
    const error = await asyncLatchkeyErrorOf(viaProxy().signUp('huge@example.com', PASSWORD));
    expect(error.code).toBe('LK_KDF_TOO_COSTLY');
    // Loose, for a loaded machine: stretching 4 TiB would take hours, were it not refused first.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(process.memoryUsage().arrayBuffers - heap).toBeLessThan(64 * 1024 * 1024);
    expect(proxy.seen).toEqual(['GET /v1/config']);
    expect(snapshotDatabase(database())).toEqual(before);
  });
});

describe('the CLI against a server on a setting below the floor', () => {
  let server: TestServer;
  const homes: string[] = [];
  const newHome = () => {
    const home = mkdtempSync(join(tmpdir(), 'latchkey-kdf-'));
    homes.push(home);
    return home;
  };
  const signUp = ['account', 'signup', 'cli-kdf@example.com', '--no-verify', '--server'];
  const passwords = lines(PASSWORD, PASSWORD);

  beforeAll(async () => {
    // The test servers' own cheap setting, 1 MiB × 1: far below the floor.
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  });

  it('says why it refuses, with LK_KDF_TOO_WEAK, and creates nothing, unless LATCHKEY_KEY_STRETCHING pins it', async () => {
    const before = snapshotDatabase(join(server.dir, 'latchkey.db'));
    const unpinned = { LATCHKEY_KEY_STRETCHING: '' };
    const refused = await cli([...signUp, server.url], newHome(), passwords, unpinned);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`error LK_KDF_TOO_WEAK: ${ERRORS.LK_KDF_TOO_WEAK.message}`);
    expect((await cliError([...signUp, server.url], newHome(), passwords, unpinned)).code).toBe('LK_KDF_TOO_WEAK');
    const other = { LATCHKEY_KEY_STRETCHING: 'memory-constrained' };
    expect((await cliError([...signUp, server.url], newHome(), passwords, other)).code).toBe('LK_KDF_MISMATCH');
    const typo = { LATCHKEY_KEY_STRETCHING: 'argon2id:m=1024' };
    expect((await cliError([...signUp, server.url], newHome(), passwords, typo)).code).toBe('LK_KDF_INVALID');
    expect(snapshotDatabase(join(server.dir, 'latchkey.db'))).toEqual(before);

    // Pinned to exactly the server's setting (the variable `latchkey serve` reads), it signs up.
    const pinned = { LATCHKEY_KEY_STRETCHING: TEST_KEY_STRETCHING_SPEC };
    expect(await cliJson([...signUp, server.url], newHome(), passwords, pinned)).toMatchObject({ verified: false });
  });
});
