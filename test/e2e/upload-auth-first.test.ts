import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoggedInAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * The batch upload takes bodies up to 4 MiB. A stranger with no session must not get the server to
 * read (and parse, and hold) that much: the bearer token is checked when the request's head arrives,
 * before any of the body is read. A raw client sends the head and the first 64 KiB of a 4 MiB body,
 * then waits: the answer must come while most of the body is still unsent. Before, the token was
 * checked after the whole body had been read and parsed, so nothing came back until it was all sent.
 */

const UPLOAD_LIMIT = 4 * 1024 * 1024;
const FIRST_PART = 64 * 1024;
/** How long the client waits for an answer with most of its body unsent. */
const WAIT_MS = 3_000;

let server: TestServer;
let token: string;
beforeAll(async () => {
  server = await startTestServer();
  const { session } = await createLoggedInAccount(server, 'upload-auth-first@example.com', 'upload auth first');
  token = session.state.token;
});
afterAll(() => server.close());

/** The start of the answer to a request whose body is sent only in part, or undefined if none came in time. */
async function answerToPartialBody(path: string, authorization?: string): Promise<string | undefined> {
  const { hostname, port } = new URL(server.url);
  const socket: Socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    received += chunk;
  });
  socket.on('error', () => undefined);
  const head = [
    `PUT ${path} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    'Content-Type: application/json',
    `Content-Length: ${UPLOAD_LIMIT}`,
    ...(authorization === undefined ? [] : [`Authorization: ${authorization}`]),
    '',
    '',
  ].join('\r\n');
  socket.write(head);
  socket.write(Buffer.alloc(FIRST_PART, 0x20));
  const deadline = Date.now() + WAIT_MS;
  while (!received.includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // Give the body of the answer a moment to follow its head.
  await new Promise((r) => setTimeout(r, 100));
  socket.destroy();
  return received === '' ? undefined : received;
}

const statusOf = (answer: string | undefined) => answer?.split('\r\n')[0];
const codeIn = (answer: string | undefined) => /"code":"(LK_[A-Z_]+)"/.exec(answer ?? '')?.[1];

describe('the batch upload checks the bearer token before reading the body', () => {
  for (const [label, authorization] of [
    ['no Authorization header', undefined],
    ['a bearer token of no session', `Bearer ${'A'.repeat(43)}`],
    ['a malformed Authorization header', 'Basic dXNlcjpwYXNz'],
  ] as const) {
    it(`answers ${label} with LK_UNAUTHORIZED while the body is still unsent`, async () => {
      const answer = await answerToPartialBody('/v1/backup/keys?version=1', authorization);
      expect(statusOf(answer)).toBe('HTTP/1.1 401 Unauthorized');
      expect(codeIn(answer)).toBe('LK_UNAUTHORIZED');
    });
  }

  it('with a live token, waits for the body as before (nothing is answered from the head alone)', async () => {
    expect(await answerToPartialBody('/v1/backup/keys?version=1', `Bearer ${token}`)).toBeUndefined();
  });
});
