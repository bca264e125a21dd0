import { afterAll, beforeAll } from 'vitest';
import { type Backend, databaseOn } from './backends.js';
import { createLoggedInAccount, type Reply, requestAsBearer, startTestServer, type TestServer } from './server.js';

/** A test server whose clock a test moves, to make sessions' password checks stale: see {@link useSkewedServer}. */
export interface SkewedServer {
  readonly server: TestServer;
  /** Added to the server's clock: past FRESH_AUTH_MS, every session's password check is stale. */
  skew: number;
  /** A request with `token` as the bearer, as a thief of the token would send it. */
  call(token: string, method: string, path: string, body?: unknown): Promise<Reply>;
  /**
   * Puts the clock back to now and signs up a fresh account, logged in: its password is
   * `${name} password`, and `tag` (its email's local part) is unique to this server, for file names.
   */
  account(
    name: string,
  ): Promise<{ session: Awaited<ReturnType<typeof createLoggedInAccount>>['session']; password: string; tag: string }>;
}

/**
 * Starts a test server on `backend` (a fresh database named from `prefix`) with a clock the tests
 * move through `skew`, before the enclosing describe's tests, and closes it after them.
 */
export function useSkewedServer(backend: Backend, prefix: string): SkewedServer {
  let server: TestServer | undefined;
  let accounts = 0;
  const env: SkewedServer = {
    get server() {
      if (server === undefined)
        throw new Error('useSkewedServer: the server is not started yet (used outside a test?)');
      return server;
    },
    skew: 0,
    call: (token, method, path, body) => requestAsBearer(env.server, token, method, path, body),
    async account(name) {
      env.skew = 0;
      const tag = `${name}-${++accounts}-${backend}`;
      const password = `${name} password`;
      const { session } = await createLoggedInAccount(env.server, `${tag}@example.com`, password);
      return { session, password, tag };
    },
  };
  beforeAll(async () => {
    server = await startTestServer(await databaseOn(backend, prefix), { now: () => Date.now() + env.skew });
  });
  afterAll(async () => server?.close());
  return env;
}
