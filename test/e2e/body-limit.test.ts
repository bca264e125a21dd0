import { LatchkeyClient } from '@latchkey/client';
import { DEFAULTS } from '@latchkey/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_KEY_STRETCHING } from '../support/server.js';
import { type ServerProcess, startServerProcess } from '../support/server-process.js';

/**
 * A body over a route's limit, sent by an ordinary fetch client (Node's global fetch, undici), must
 * reach it as a readable 413 LK_BODY_TOO_LARGE. Answering while the client is still sending and then
 * closing the connection makes the kernel reset it over unread bytes, and the client sees EPIPE or
 * "other side closed" instead of the answer, more often the larger the body (issue 7). The server runs
 * in a process of its own, as in production: in-process the client and server share one event loop,
 * which hides the race. Every size is sent several times because a single send can win it by luck.
 */

const DEFAULT_LIMIT = DEFAULTS.bodyLimitBytes;
/** The batch upload's own limit (packages/server/src/modules/backup/routes.ts). */
const UPLOAD_LIMIT = 4 * 1024 * 1024;
const REPEATS = 8;

let server: ServerProcess;
/** A live session's bearer token: the batch upload checks it before reading any of the body. */
let authorization: string;
beforeAll(async () => {
  server = await startServerProcess();
  const client = new LatchkeyClient({ serverUrl: server.url, keyStretching: TEST_KEY_STRETCHING });
  const email = 'body-limit@example.com';
  await client.signUp(email, 'body limit password');
  await client.verifyEmail(email, await server.codeFor(email));
  authorization = `Bearer ${(await client.logIn(email, 'body limit password')).state.token}`;
});
afterAll(async () => {
  await server?.stop();
});

/** What a fetch of `body` came to: the status and LK code read from the answer, or the network error. */
async function outcome(
  method: string,
  path: string,
  body: Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Promise<string> {
  try {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body,
      // Before the fix a streamed body could leave fetch waiting for good; that is an outcome too.
      signal: AbortSignal.timeout(20_000),
      // A stream has no length: it goes chunked, and undici asks for half duplex.
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit);
    const answer = (await response.json()) as { code?: string };
    return `${response.status} ${answer.code}`;
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    if ((error as Error).name === 'TimeoutError') return 'no answer in 20 s';
    return `network error: ${cause?.code ?? cause?.message ?? String(error)}`;
  }
}

/** `size` bytes of a JSON string, as a stream of 64 KiB chunks (chunked transfer, no content-length). */
function streamOf(size: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(64 * 1024).fill(0x41);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close();
      const part = chunk.subarray(0, Math.min(chunk.length, size - sent));
      sent += part.length;
      controller.enqueue(part);
    },
  });
}

const SIZES = [
  ['one byte over', 1],
  ['half as much again', 1.5],
  ['twice', 2],
  ['four times', 4],
] as const;

describe('a body over the limit, sent by fetch', () => {
  for (const [route, method, path, limit, signedIn] of [
    ['a route with the default limit', 'POST', '/v1/account/register/start', DEFAULT_LIMIT, false],
    ['the batch upload', 'PUT', '/v1/backup/keys?version=1', UPLOAD_LIMIT, true],
  ] as const) {
    const headers = () => (signedIn ? { authorization } : {});
    for (const [label, factor] of SIZES) {
      const size = factor === 1 ? limit + 1 : limit * factor;
      it(`${route}: ${label} its ${limit / 1024} KiB is read as LK_BODY_TOO_LARGE, every time`, async () => {
        const body = new Uint8Array(size).fill(0x41);
        const outcomes: string[] = [];
        for (let i = 0; i < REPEATS; i++) outcomes.push(await outcome(method, path, body, headers()));
        expect(outcomes).toEqual(Array(REPEATS).fill('413 LK_BODY_TOO_LARGE'));
      });
    }

    it(`${route}: twice its limit streamed without a length is read as LK_BODY_TOO_LARGE, every time`, async () => {
      const outcomes: string[] = [];
      for (let i = 0; i < REPEATS; i++) outcomes.push(await outcome(method, path, streamOf(limit * 2), headers()));
      expect(outcomes).toEqual(Array(REPEATS).fill('413 LK_BODY_TOO_LARGE'));
    });
  }

  // Refused from its head alone (before the body is read), an upload without a session is answered while
  // fetch is still sending: that answer must be readable too, not lost to a reset connection.
  for (const [label, factor] of [['its whole limit', 1], ...SIZES.slice(1)] as const) {
    it(`the batch upload without a session: ${label} is read as LK_UNAUTHORIZED, every time`, async () => {
      const body = new Uint8Array(UPLOAD_LIMIT * factor).fill(0x41);
      const outcomes: string[] = [];
      for (let i = 0; i < REPEATS; i++) outcomes.push(await outcome('PUT', '/v1/backup/keys?version=1', body));
      expect(outcomes).toEqual(Array(REPEATS).fill('401 LK_UNAUTHORIZED'));
    });
  }

  it('an endless body is cut off after a bounded read, and the server goes on answering', async () => {
    // The stream counts what fetch took from it: the server's reads plus what the sockets buffer.
    let produced = 0;
    const chunk = new Uint8Array(64 * 1024).fill(0x41);
    // "Endless" up to 1 GiB, so the loop is bounded even if the server read it all; and each pull waits
    // a macrotask, since a consumer that swallows chunks at once (undici writing into a socket the server
    // has closed) would otherwise spin on microtasks and starve every timer, this test's timeout included.
    const endless = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (produced >= 1024 * 1024 * 1024) return controller.close();
        await new Promise((resolve) => setImmediate(resolve));
        produced += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const result = await outcome('POST', '/v1/account/register/start', endless);
    // Either answer is fine here (a body far over the limit may be cut); reading it all is not.
    expect(result).toMatch(/^(413 LK_BODY_TOO_LARGE|network error: .+)$/);
    // Bounded: a few times the limit read, plus the loopback socket buffers on both sides (a few MiB).
    expect(produced).toBeLessThan(32 * 1024 * 1024);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });
});
