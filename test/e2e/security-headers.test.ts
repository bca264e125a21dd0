import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { beginRawLogin } from '../support/raw-login.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * The headers a browser obeys, read off real answers over HTTP: a strict Content-Security-Policy, no
 * framing, no sniffing, no referrer, nothing stored by a cache, on the API and on the web app alike;
 * CORS only for the listed origins, and the Matrix routes still open to every origin as their spec asks.
 * The browser's side of the same policy is in test/browser/security.test.ts.
 */

const LISTED = 'https://app.example';
const UNLISTED = 'https://evil.example';
const PASSWORD = 'correct horse battery staple';

let server: TestServer;
let webDir: string;
let token: string;

beforeAll(async () => {
  webDir = mkdtempSync(join(tmpdir(), 'latchkey-headers-web-'));
  writeFileSync(join(webDir, 'index.html'), '<!doctype html><title>app</title><p>app</p>');
  server = await startTestServer({ webDir, corsOrigins: [LISTED, 'http://127.0.0.1:5173'] });
  const { client } = await createVerifiedAccount(server, 'headers@example.com', PASSWORD);
  const session = await client.logIn('headers@example.com', PASSWORD);
  token = session.state.token;
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (webDir !== undefined) rmSync(webDir, { recursive: true, force: true });
});

function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(new URL(path, server.url), init);
}

/** The CSP's directives by name, each with its sources. */
function directives(response: Response): Map<string, string[]> {
  const header = response.headers.get('content-security-policy');
  expect(header).not.toBeNull();
  const entries = (header ?? '')
    .split(';')
    .map((part) => part.trim().split(/\s+/))
    .filter(([name]) => name !== undefined && name !== '')
    .map(([name = '', ...sources]) => [name, sources] as const);
  return new Map(entries);
}

/** What every answer of ours carries, whatever it is. */
function expectLockedDown(response: Response): void {
  const csp = directives(response);
  expect(csp.get('default-src')).toEqual(["'self'"]);
  // OPAQUE's wasm is compiled by the page: 'wasm-unsafe-eval' and nothing that runs text as script.
  expect(csp.get('script-src')).toEqual(["'self'", "'wasm-unsafe-eval'"]);
  expect(csp.get('script-src-attr')).toEqual(["'none'"]);
  expect(csp.get('style-src')).toEqual(["'self'"]);
  expect(csp.get('object-src')).toEqual(["'none'"]);
  expect(csp.get('base-uri')).toEqual(["'none'"]);
  expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
  expect(response.headers.get('content-security-policy')).not.toMatch(/'unsafe-inline'|'unsafe-eval'|\*|data:/);
  expect(response.headers.get('x-frame-options')).toBe('DENY');
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.get('referrer-policy')).toBe('no-referrer');
  expect(response.headers.get('cross-origin-opener-policy')).toBe('same-origin');
}

describe('security headers', () => {
  it('are on every API answer, with Cache-Control: no-store, success or error', async () => {
    const answers = [
      await call('/health'),
      await call('/v1/config'),
      await call('/v1/account', { headers: { authorization: `Bearer ${token}` } }),
      await call('/v1/account'),
      await call('/v1/no-such-route'),
      await call('/v1/session/login/start', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"email":',
      }),
    ];
    expect(answers.map((response) => response.status)).toEqual([200, 200, 200, 401, 404, 400]);
    for (const response of answers) {
      expectLockedDown(response);
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('keep the answer that carries the sealed keys bundle (wrapKB, kA) out of every cache', async () => {
    const { finish } = await beginRawLogin(server.url, 'headers@example.com', PASSWORD);
    const response = await call('/v1/session/login/finish', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(finish),
    });
    expect(response.status).toBe(200);
    expect(Object.keys((await response.json()) as object)).toContain('keysBundle');
    expectLockedDown(response);
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  it('are on the web app page, which no site may frame', async () => {
    const response = await call('/');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expectLockedDown(response);
  });

  it('let /docs alone load data: images and inline styles (Swagger UI uses both), scripts as strict as anywhere', async () => {
    const response = await call('/docs/static/index.html');
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('swagger-ui-bundle.js');
    const csp = directives(response);
    expect(csp.get('img-src')).toEqual(["'self'", 'data:']);
    expect(csp.get('style-src')).toEqual(["'self'", "'unsafe-inline'"]);
    expect(csp.get('script-src')).toEqual(["'self'", "'wasm-unsafe-eval'"]);
    expect(csp.get('script-src-attr')).toEqual(["'none'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    // Only the /docs routes: the API and the web app keep images and styles to 'self'.
    for (const path of ['/v1/config', '/']) {
      const strict = directives(await call(path));
      expect(strict.get('img-src')).toBeUndefined();
      expect(strict.get('style-src')).toEqual(["'self'"]);
    }
  });

  it('are on a URL the router cannot even decode, answered before any hook runs', async () => {
    const response = await call('/v1/sessions/%ZZ', { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe('LK_VALIDATION');
    const csp = directives(response);
    expect(csp.get('default-src')).toEqual(["'none'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('cache-control')).toBe('no-store');
  });
});

describe('CORS', () => {
  const preflight = (path: string, origin: string, method: string, headers: string) =>
    call(path, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
    });

  it('answers a preflight from a listed origin for what the SDK sends: its methods, Authorization and JSON', async () => {
    for (const [path, method] of [
      ['/v1/account', 'DELETE'],
      ['/v1/session/login/start', 'POST'],
      ['/v1/backup/keys', 'PUT'],
    ] as const) {
      const response = await preflight(path, LISTED, method, 'authorization,content-type');
      expect(response.status).toBe(204);
      expect(response.headers.get('access-control-allow-origin')).toBe(LISTED);
      expect(response.headers.get('access-control-allow-methods')?.split(/,\s*/)).toEqual(
        expect.arrayContaining(['GET', 'POST', 'PUT', 'DELETE']),
      );
      expect(response.headers.get('access-control-allow-headers')?.toLowerCase().split(/,\s*/)).toEqual(
        expect.arrayContaining(['authorization', 'content-type']),
      );
      // Bearer tokens, never cookies: no page is ever let act with the user's ambient credentials.
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
      expect(response.headers.get('vary')).toMatch(/origin/i);
    }
  });

  it('answers a preflight from an unlisted origin with nothing a browser would accept', async () => {
    for (const origin of [UNLISTED, 'null', 'https://app.example.evil.example', 'http://app.example']) {
      const response = await preflight('/v1/account', origin, 'GET', 'authorization');
      expect(response.status).toBe(404);
      expect(((await response.json()) as { code: string }).code).toBe('LK_NOT_FOUND');
      const cors = [...response.headers.keys()].filter((name) => name.startsWith('access-control-'));
      expect(cors).toEqual([]);
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('names a listed origin on the answer itself, and no other', async () => {
    const listed = await call('/v1/account', { headers: { origin: LISTED, authorization: `Bearer ${token}` } });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(listed.headers.get('vary')).toMatch(/origin/i);
    // Errors too, or the SDK in that page would read no LK_* code, only a failed fetch.
    const refused = await call('/v1/account', { headers: { origin: LISTED } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(((await refused.json()) as { code: string }).code).toBe('LK_UNAUTHORIZED');
    const unlisted = await call('/v1/account', { headers: { origin: UNLISTED, authorization: `Bearer ${token}` } });
    expect(unlisted.headers.get('access-control-allow-origin')).toBeNull();
    expect(unlisted.headers.get('vary')).toMatch(/origin/i);
    const sameOrigin = await call('/v1/config');
    expect(sameOrigin.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('is off with no origin listed (the default)', async () => {
    const closed = await startTestServer();
    try {
      const response = await fetch(new URL('/v1/config', closed.url), {
        method: 'OPTIONS',
        headers: { origin: LISTED, 'access-control-request-method': 'GET' },
      });
      expect(response.status).toBe(404);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await closed.close();
    }
  });

  it('leaves the Matrix routes open to every origin, as the Matrix spec asks, with the same headers', async () => {
    const path = '/_matrix/client/v3/room_keys/version';
    for (const origin of [LISTED, UNLISTED]) {
      const pre = await preflight(path, origin, 'PUT', 'authorization,content-type');
      expect(pre.status).toBe(204);
      expect(pre.headers.get('access-control-allow-origin')).toBe('*');
      expect(pre.headers.get('access-control-allow-methods')).toContain('PUT');
      const answer = await call(path, { headers: { origin, authorization: `Bearer ${token}` } });
      expect(answer.headers.get('access-control-allow-origin')).toBe('*');
      expectLockedDown(answer);
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }
  });
});

describe('the OAuth server, mounted under /oauth as Connect middleware', () => {
  it('its raw answers still carry the headers, and it answers its own preflights', async () => {
    const withOAuth = await startTestServer({ corsOrigins: [LISTED] });
    try {
      // oidc-provider writes this answer itself (an unknown client), past Fastify's reply.
      const answer = await fetch(new URL('/oauth/auth?client_id=nobody', withOAuth.url));
      expect(answer.status).toBe(400);
      expect(await answer.json()).toMatchObject({ error: 'invalid_client' });
      const csp = directives(answer);
      expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
      expect(csp.get('script-src')).toEqual(["'self'", "'wasm-unsafe-eval'"]);
      expect(answer.headers.get('x-frame-options')).toBe('DENY');
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
      expect(answer.headers.get('cache-control')).toBe('no-store');
      // A preflight for the token endpoint is oidc-provider's to answer (it checks the client's origins on
      // the request itself), not our allow-list's 404.
      const preflight = await fetch(new URL('/oauth/token', withOAuth.url), {
        method: 'OPTIONS',
        headers: { origin: LISTED, 'access-control-request-method': 'POST' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-methods')).toBe('POST');
      // And the API beside it is as before.
      const api = await fetch(new URL('/v1/config', withOAuth.url), { headers: { origin: LISTED } });
      expect(api.headers.get('access-control-allow-origin')).toBe(LISTED);
      expect(api.headers.get('cache-control')).toBe('no-store');
    } finally {
      await withOAuth.close();
    }
  });
});
