import { connect, type Socket } from 'node:net';
import { ERRORS } from '@latchkey/core';
import type { FastifyPluginAsync } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * The server's two answers of last resort, through a real listener with test-only routes
 * (AppOptions.extraPlugins): an unexpected exception reaches the client as a bare LK_INTERNAL while
 * the log keeps the detail (oidc-provider's rule), and a request arriving during graceful shutdown is
 * refused with LK_UNAVAILABLE while the one in flight finishes.
 */

/** A promise and the function that settles it, for a test to wait on a server-side step. */
function signal<T = void>(): { promise: Promise<T>; fire: (value: T) => void } {
  let fire!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits the bytes of one connection into its HTTP/1.1 responses (each with a content-length). */
function parseResponses(raw: string): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) throw new Error(`truncated response: ${JSON.stringify(rest)}`);
    const [statusLine = '', ...headerLines] = rest.slice(0, headEnd).split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]);
    const headers = Object.fromEntries(
      headerLines.map((line) => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
      }),
    );
    const length = Number(headers['content-length']);
    if (!Number.isInteger(length)) throw new Error(`no content-length: ${statusLine}`);
    const bodyStart = headEnd + 4;
    responses.push({ status, headers, body: rest.slice(bodyStart, bodyStart + length) });
    rest = rest.slice(bodyStart + length);
  }
  return responses;
}

/** Everything the server sends on `socket` until it closes the connection. */
function readUntilClosed(socket: Socket): Promise<string> {
  let data = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    data += chunk;
  });
  return new Promise((resolve, reject) => {
    socket.on('error', reject);
    socket.on('close', () => resolve(data));
  });
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`;

describe('answers of last resort', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('answers an unexpected exception with a bare LK_INTERNAL and logs the detail', async () => {
    const lines: string[] = [];
    const throwing: FastifyPluginAsync = async (app) => {
      app.get('/test/throw', async () => {
        throw new Error('secret detail');
      });
    };
    server = await startTestServer(
      { logLevel: 'info' },
      { logStream: { write: (line) => void lines.push(line) }, extraPlugins: [throwing] },
    );

    const response = await fetch(`${server.url}/test/throw`);
    expect(response.status).toBe(500);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ code: 'LK_INTERNAL', message: ERRORS.LK_INTERNAL.message });
    expect(text).not.toContain('secret detail');

    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const logged = entries.filter((entry) => entry.msg === 'unexpected error');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 50, err: { type: 'Error', message: 'secret detail' } });
    expect(JSON.stringify(logged[0])).toContain('server-errors.test.ts'); // the stack, for whoever reads the log
    // The same request's completion line, so the log ties the detail to the 500 the client saw.
    const completed = entries.find((entry) => entry.msg === 'request completed' && entry.reqId === logged[0]?.reqId);
    expect(completed).toMatchObject({ res: { statusCode: 500 } });
  });

  it('refuses a request arriving during shutdown with LK_UNAVAILABLE, and finishes the one in flight', async () => {
    const entered = signal();
    const release = signal();
    const refused = signal();
    const stalling: FastifyPluginAsync = async (app) => {
      app.get('/test/slow', async () => {
        entered.fire();
        await release.promise;
        return { finished: true };
      });
      // onSend runs for the refusal too (the hook replied), so the test knows it was answered.
      app.addHook('onSend', async (_request, reply, payload) => {
        if (reply.statusCode === 503) refused.fire();
        return payload;
      });
    };
    server = await startTestServer({}, { extraPlugins: [stalling] });
    const { app } = server;
    const { port } = new URL(server.url);

    const socket = connect(Number(port), '127.0.0.1');
    const received = readUntilClosed(socket);
    socket.write(get('/test/slow'));
    await entered.promise;

    const closed = app.close();
    // Fastify stops the listener right after the preClose hooks, so once it is down the server is closing.
    while (app.server.listening) await new Promise((resolve) => setTimeout(resolve, 5));
    await expect(
      new Promise((resolve, reject) => connect(Number(port), '127.0.0.1').on('connect', resolve).on('error', reject)),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    // A request pipelined on the busy connection reaches the closing server.
    socket.write(get('/test/slow'));
    // Bounded: a server that does not refuse it (or refuses it some other way, skipping onSend) fails
    // on the responses below instead of hanging.
    await Promise.race([refused.promise, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    release.fire();

    const [first, second, ...more] = parseResponses(await received);
    expect(more).toEqual([]);
    expect(first).toMatchObject({ status: 200 });
    expect(JSON.parse(first?.body ?? '')).toEqual({ finished: true });
    expect(second).toMatchObject({ status: 503, headers: { connection: 'close' } });
    expect(JSON.parse(second?.body ?? '')).toEqual({ code: 'LK_UNAVAILABLE', message: ERRORS.LK_UNAVAILABLE.message });
    await closed;
  });
});
