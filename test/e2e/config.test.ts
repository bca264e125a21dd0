import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, type ServerConfig } from '@latchkey/server';
import * as opaque from '@serenity-kit/opaque';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, type Running, start } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * The server's settings from the outside: `X-Forwarded-For` believed only from the configured
 * proxies (seen through the per-address login rate limit), and `latchkey serve` reading the
 * LATCHKEY_* variables, its flags winning over them, bad values refused with their LK_* code, and
 * the master key file tightened (or refused) on start.
 */

const dirs: string[] = [];
const newDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-config-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('trusting a reverse proxy for the client address', () => {
  /** Two logins per address per window, so a third from the same address is refused. */
  const PER_ADDRESS = 2;
  let startLoginRequest: string;
  let emails = 0;

  beforeAll(async () => {
    await opaque.ready;
    // The server does not mind one KE1 sent many times; only the rate limit is under test.
    startLoginRequest = opaque.client.startLogin({ password: 'any password' }).startLoginRequest;
  });

  /** A server whose clock stands still, so every request falls in one rate-limit window. */
  async function serverWith(trustProxy: ServerConfig['trustProxy']): Promise<TestServer> {
    const now = Date.now();
    return startTestServer(
      {
        trustProxy,
        rateLimits: { ...DEFAULTS.rateLimits, loginPerAddress: { max: PER_ADDRESS, windowMs: 60_000 } },
      },
      { now: () => now },
    );
  }

  /** A login start, each for a new email so the per-account limit never bites: `ok` or the refusal's code. */
  async function loginStart(server: TestServer, forwardedFor?: string): Promise<string> {
    emails += 1;
    const response = await fetch(`${server.url}/v1/session/login/start`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }),
      },
      body: JSON.stringify({ email: `user${emails}@example.com`, startLoginRequest }),
    });
    const body = (await response.json()) as { code?: string };
    if (response.status === 200) return 'ok';
    expect(response.status).toBe(429);
    return body.code ?? 'no code';
  }

  it('with the proxy listed, keys the limit by the X-Forwarded-For address the proxy added', async () => {
    const server = await serverWith(['10.9.9.9', '127.0.0.1']);
    try {
      expect(await loginStart(server, '203.0.113.1')).toBe('ok');
      expect(await loginStart(server, '203.0.113.1')).toBe('ok');
      expect(await loginStart(server, '203.0.113.1')).toBe('LK_RATE_LIMITED');
      // Another client behind the same proxy has its own bucket.
      expect(await loginStart(server, '203.0.113.2')).toBe('ok');
      expect(await loginStart(server, '203.0.113.2')).toBe('ok');
      expect(await loginStart(server, '203.0.113.2')).toBe('LK_RATE_LIMITED');
      // What the client wrote into the header itself (left of what the proxy appended) is not believed.
      expect(await loginStart(server, '198.51.100.7, 203.0.113.1')).toBe('LK_RATE_LIMITED');
      expect(await loginStart(server, '198.51.100.8, 203.0.113.2')).toBe('LK_RATE_LIMITED');
      // A request without the header is the proxy's own address, in a bucket of its own.
      expect(await loginStart(server)).toBe('ok');
    } finally {
      await server.close();
    }
  });

  it('with a CIDR range, believes every proxy in it', async () => {
    const server = await serverWith(['127.0.0.0/8']);
    try {
      for (const client of ['203.0.113.10', '203.0.113.11', '203.0.113.12']) {
        expect(await loginStart(server, client)).toBe('ok');
      }
    } finally {
      await server.close();
    }
  });

  it('off (the default), ignores X-Forwarded-For: different headers share the one bucket of the peer', async () => {
    expect(DEFAULTS.trustProxy).toBe(false);
    const server = await serverWith(DEFAULTS.trustProxy);
    try {
      expect(await loginStart(server, '203.0.113.1')).toBe('ok');
      expect(await loginStart(server, '203.0.113.2')).toBe('ok');
      expect(await loginStart(server, '203.0.113.3')).toBe('LK_RATE_LIMITED');
      expect(await loginStart(server)).toBe('LK_RATE_LIMITED');
    } finally {
      await server.close();
    }
  });

  it('listing only other proxies ignores the header from this peer', async () => {
    const server = await serverWith(['10.0.0.0/8', '::1']);
    try {
      expect(await loginStart(server, '203.0.113.1')).toBe('ok');
      expect(await loginStart(server, '203.0.113.2')).toBe('ok');
      expect(await loginStart(server, '203.0.113.3')).toBe('LK_RATE_LIMITED');
    } finally {
      await server.close();
    }
  });
});

describe('latchkey serve: environment and flags', () => {
  const STRETCHING = 'argon2id:m=1024,t=1,p=1';

  /** `latchkey serve` with exactly these LATCHKEY_* variables (the caller's own are cleared). */
  function serve(args: readonly string[], env: Record<string, string>): Running {
    const cleared = Object.fromEntries(
      Object.keys(process.env)
        .filter((name) => name.startsWith('LATCHKEY_'))
        .map((name) => [name, '']),
    );
    const dir = newDir();
    const running = start(process.execPath, ['--import', 'tsx', MAIN, 'serve', ...args], {
      ...cleared,
      LATCHKEY_HOME: join(dir, 'home'),
      ...env,
    });
    running.child.stdin.end();
    return running;
  }

  /** The variables for a server in `dir` on `port`, so nothing lands in the repository's ./data. */
  function baseEnv(dir: string, port: number): Record<string, string> {
    return {
      LATCHKEY_HOST: '127.0.0.1',
      LATCHKEY_PORT: String(port),
      LATCHKEY_DB: `sqlite:${join(dir, 'env.db')}`,
      LATCHKEY_MASTER_KEY_FILE: join(dir, 'env.key'),
      LATCHKEY_KEY_STRETCHING: STRETCHING,
      LATCHKEY_LOG_LEVEL: 'silent',
    };
  }

  async function stop(running: Running) {
    running.child.kill('SIGTERM');
    const done = await running.done;
    expect(done, done.stderr).toMatchObject({ code: 0, signal: null });
    return done;
  }

  it('reads the LATCHKEY_* variables, lets each flag win over its variable, and tightens the key file', async () => {
    const dir = newDir();
    const [envPort, flagPort] = [await freePort(), await freePort()];
    const [envWeb, flagWeb] = [join(dir, 'env-web'), join(dir, 'flag-web')];
    // A master key made by hand, readable by everyone: the server must tighten it, not refuse it.
    const key = new Uint8Array(32).fill(42);
    writeFileSync(join(dir, 'env.key'), key);
    chmodSync(join(dir, 'env.key'), 0o644);
    const running = serve(
      ['--port', String(flagPort), '--key-stretching', STRETCHING, '--web', flagWeb, '--log-level', 'silent', '--json'],
      {
        ...baseEnv(dir, envPort),
        // Each of these would be used (or refused) if its flag did not win.
        LATCHKEY_KEY_STRETCHING: 'rfc-recommended',
        LATCHKEY_WEB_DIR: envWeb,
        LATCHKEY_LOG_LEVEL: 'not-a-level',
      },
    );
    try {
      const url = `http://127.0.0.1:${flagPort}`;
      await running.waitFor(`"url":"${url}"`, 30_000);
      expect(JSON.parse(running.output().stdout)).toEqual({ url, web: flagWeb });
      expect(await (await fetch(`${url}/v1/config`)).json()).toMatchObject({
        keyStretching: { 'argon2id-custom': { memory: 1024, iterations: 1, parallelism: 1 } },
      });
      await expect(fetch(`http://127.0.0.1:${envPort}/health`)).rejects.toThrow();
      // No flag for these: the variables hold.
      expect(existsSync(join(dir, 'env.db'))).toBe(true);
      expect(statSync(join(dir, 'env.key')).mode & 0o777).toBe(0o600);
      expect(new Uint8Array(readFileSync(join(dir, 'env.key')))).toEqual(key);
      // --log-level silent won over the variable (which alone would be refused): no log line.
      const { stderr } = await stop(running);
      expect(stderr.split('\n').filter((line) => line.startsWith('{'))).toEqual([]);
    } finally {
      running.child.kill('SIGKILL');
    }
  });

  it('refuses a bad variable with LK_CONFIG_INVALID naming it (exit status 1)', async () => {
    const dir = newDir();
    const port = await freePort();
    for (const [name, value] of [
      ['LATCHKEY_PORT', 'eighty'],
      ['LATCHKEY_TRUST_PROXY', 'true'],
      ['LATCHKEY_DB', 'mysql://root:hunter2@db/latchkey'],
      ['LATCHKEY_CORS_ORIGINS', 'https://app.example/'],
    ] as const) {
      const done = await serve(['--json'], { ...baseEnv(dir, port), [name]: value }).done;
      expect(done.code, done.stdout + done.stderr).toBe(1);
      const { error } = JSON.parse(done.stdout) as { error: { code: string; details?: unknown; message: string } };
      expect(error).toMatchObject({ code: 'LK_CONFIG_INVALID', details: { setting: name } });
      expect(done.stdout + done.stderr).not.toContain('hunter2');
    }
    expect(existsSync(join(dir, 'env.db'))).toBe(false);
  });

  it('refuses a bad flag with LK_USAGE naming the flag (exit status 2), even over a good variable', async () => {
    const dir = newDir();
    const port = await freePort();
    for (const args of [
      ['--trust-proxy', '10.0.0.0/33'],
      ['--trust-proxy', 'true'],
      ['--port', '99999'],
      ['--log-level', 'loud'],
      ['--db', ''],
      ['--cors-origins', '*'],
    ]) {
      const done = await serve([...args, '--json'], baseEnv(dir, port)).done;
      expect(done.code, done.stdout + done.stderr).toBe(2);
      const { error } = JSON.parse(done.stdout) as { error: { code: string; message: string } };
      expect(error.code).toBe('LK_USAGE');
      expect(error.message.startsWith(args[0] as string)).toBe(true);
    }
  });

  it('lets in the origins of LATCHKEY_CORS_ORIGINS, or of --cors-origins over it', async () => {
    const preflightFrom = (url: string, origin: string) =>
      fetch(`${url}/v1/account`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
      });
    for (const [args, allowed, refused] of [
      [[], 'https://env.example', 'https://flag.example'],
      [['--cors-origins', 'https://flag.example'], 'https://flag.example', 'https://env.example'],
    ] as const) {
      const dir = newDir();
      const port = await freePort();
      const running = serve([...args, '--json'], {
        ...baseEnv(dir, port),
        LATCHKEY_CORS_ORIGINS: 'https://env.example',
      });
      try {
        const url = `http://127.0.0.1:${port}`;
        await running.waitFor(`"url":"${url}"`, 30_000);
        const yes = await preflightFrom(url, allowed);
        expect(yes.status).toBe(204);
        expect(yes.headers.get('access-control-allow-origin')).toBe(allowed);
        const no = await preflightFrom(url, refused);
        expect(no.status).toBe(404);
        expect(no.headers.get('access-control-allow-origin')).toBeNull();
        await stop(running);
      } finally {
        running.child.kill('SIGKILL');
      }
    }
  });

  it('refuses a master key file of the wrong length with LK_CONFIG_INVALID, leaving it untouched', async () => {
    const dir = newDir();
    const keyFile = join(dir, 'short.key');
    writeFileSync(keyFile, new Uint8Array(31).fill(1), { mode: 0o600 });
    const done = await serve(['--master-key', keyFile, '--json'], baseEnv(dir, await freePort())).done;
    expect(done.code, done.stdout + done.stderr).toBe(1);
    expect(JSON.parse(done.stdout)).toMatchObject({ error: { code: 'LK_CONFIG_INVALID', details: { file: keyFile } } });
    expect(readFileSync(keyFile)).toHaveLength(31);
  });

  it('believes X-Forwarded-For from LATCHKEY_TRUST_PROXY, and --trust-proxy false turns it off', async () => {
    /** The client address the server logged for one request carrying X-Forwarded-For. */
    async function loggedAddress(args: readonly string[]): Promise<unknown> {
      const dir = newDir();
      const port = await freePort();
      const running = serve([...args, '--json'], {
        ...baseEnv(dir, port),
        LATCHKEY_TRUST_PROXY: '127.0.0.1',
        LATCHKEY_LOG_LEVEL: 'info',
      });
      try {
        await running.waitFor(`"url":"http://127.0.0.1:${port}"`, 30_000);
        await fetch(`http://127.0.0.1:${port}/health?probe`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
        await running.waitFor('"url":"/health?probe"');
        const { stderr } = await stop(running);
        const line = stderr
          .split('\n')
          .filter((text) => text.startsWith('{'))
          .map((text) => JSON.parse(text) as { req?: { url?: string; remoteAddress?: string } })
          .find((entry) => entry.req?.url === '/health?probe');
        return line?.req?.remoteAddress;
      } finally {
        running.child.kill('SIGKILL');
      }
    }
    expect(await loggedAddress([])).toBe('203.0.113.9');
    expect(await loggedAddress(['--trust-proxy', 'false'])).toBe('127.0.0.1');
  });
});
