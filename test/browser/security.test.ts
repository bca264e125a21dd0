import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromBase64Url, toBase64Url } from '@latchkey/core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotDatabase } from '../support/db-snapshot.js';
import { createVerifiedAccount, startTestServer, TEST_KEY_STRETCHING, type TestServer } from '../support/server.js';
import { buildWebApp, launchChromium, logIn } from './harness.js';

/**
 * The server's browser policy as Chromium enforces it: a script injected into the web app does not
 * run (and the page reports the violation), no other site can frame the app, and the SDK works from a
 * third-party app on a listed origin and fails cleanly, with a hint, from one that is not listed.
 * The headers themselves are checked over HTTP in test/e2e/security-headers.test.ts.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STEP_MS = 20_000;
const PASSWORD = 'correct horse battery staple';

let server: TestServer;
let browser: Browser;
let webDir: string;
let appDir: string;
/** The third-party app, served twice: from an origin the server lists, and from one it does not. */
let listedApp: StaticSite;
let unlistedApp: StaticSite;

interface StaticSite {
  origin: string;
  close(): Promise<void>;
}

beforeAll(async () => {
  [webDir, appDir] = await Promise.all([buildWebApp(), buildThirdPartyApp()]);
  listedApp = await serveStatic(appDir);
  unlistedApp = await serveStatic(appDir);
  server = await startTestServer({ webDir, corsOrigins: [listedApp.origin] });
  browser = await launchChromium();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await listedApp?.close();
  await unlistedApp?.close();
  for (const dir of [webDir, appDir]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/**
 * A third-party web app: one page whose module script puts the SDK (built for browsers from its
 * sources, as the web app's is) on `window`, so a test can drive it.
 */
async function buildThirdPartyApp(): Promise<string> {
  const source = mkdtempSync(join(tmpdir(), 'latchkey-third-party-src-'));
  const outDir = mkdtempSync(join(tmpdir(), 'latchkey-third-party-'));
  writeFileSync(
    join(source, 'index.html'),
    '<!doctype html><title>A third-party app</title><script type="module" src="./main.ts"></script>',
  );
  writeFileSync(
    join(source, 'main.ts'),
    "import { LatchkeyClient } from '@latchkey/client';\nObject.assign(window, { LatchkeyClient });\n",
  );
  try {
    await build({
      configFile: false,
      root: source,
      base: './',
      mode: 'production',
      logLevel: 'warn',
      resolve: {
        alias: {
          '@latchkey/client': join(ROOT, 'packages/client/src/index.ts'),
          '@latchkey/core': join(ROOT, 'packages/core/src/index.ts'),
        },
      },
      build: { outDir, emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 1500 },
    });
  } finally {
    rmSync(source, { recursive: true, force: true });
  }
  return outDir;
}

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/** A static file server on 127.0.0.1, on a port of its own: an origin of its own. */
async function serveStatic(dir: string): Promise<StaticSite> {
  const site: Server = createServer((request, response) => {
    const path = normalize(new URL(request.url ?? '/', 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
    try {
      const body = readFileSync(join(dir, path));
      response.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  const { port } = site.address() as { port: number };
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => site.close(() => resolve())),
  };
}

interface Violation {
  directive: string;
  blockedURI: string;
}

/** A fresh context that records, from the first script on, every CSP violation its pages report. */
async function openPage(): Promise<{ context: BrowserContext; page: Page; errors: string[]; console: string[] }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_MS);
  await context.addInitScript(() => {
    const seen: Array<{ directive: string; blockedURI: string }> = [];
    Object.assign(window, { __violations: seen });
    document.addEventListener('securitypolicyviolation', (event) => {
      seen.push({ directive: event.effectiveDirective, blockedURI: event.blockedURI });
    });
  });
  const page = await context.newPage();
  const errors: string[] = [];
  const console: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => console.push(message.text()));
  return { context, page, errors, console };
}

function violations(page: Page): Promise<Violation[]> {
  return page.evaluate(() => (window as unknown as { __violations: Violation[] }).__violations);
}

describe('the web app under its Content-Security-Policy', () => {
  it('runs no script injected into its page, inline or as an attribute, and reports each one', async () => {
    const { context, page } = await openPage();
    try {
      // As if a proxy, a stored value or a bug put script into the HTML the server sends: the answer is
      // the server's own, headers and all, with a script added to its head.
      await page.route(`${server.url}/`, async (route) => {
        const response = await route.fetch();
        const html = await response.text();
        expect(html).toContain('<head>');
        await route.fulfill({ response, body: html.replace('<head>', '<head><script>window.pwned = 1</script>') });
      });
      await page.goto(`${server.url}/#/login`);
      await page.locator('#screen[data-route="login"]').waitFor();
      // And into the live page, as a DOM injection would.
      await page.evaluate(() => {
        const script = document.createElement('script');
        script.textContent = 'window.pwnedByElement = 1';
        document.body.append(script);
        document.body.insertAdjacentHTML('beforeend', '<img src="./favicon.svg" onload="window.pwnedByAttribute = 1">');
      });
      await page.waitForFunction(
        () => (window as unknown as { __violations: Violation[] }).__violations.length >= 3,
        undefined,
        { timeout: STEP_MS },
      );
      const ran = await page.evaluate(() => {
        const w = window as unknown as Record<string, unknown>;
        return [w.pwned, w.pwnedByElement, w.pwnedByAttribute];
      });
      expect(ran).toEqual([undefined, undefined, undefined]);
      const seen = await violations(page);
      expect(seen.filter((v) => v.directive === 'script-src-elem' && v.blockedURI === 'inline')).toHaveLength(2);
      expect(seen.filter((v) => v.directive === 'script-src-attr' && v.blockedURI === 'inline')).toHaveLength(1);
    } finally {
      await context.close();
    }
  });

  it('is built with no inline script, style or data: URL for the policy to refuse', () => {
    const html = readFileSync(join(webDir, 'index.html'), 'utf8');
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map(([tag]) => tag);
    expect(scripts.length).toBeGreaterThan(0);
    for (const tag of scripts) expect(tag).toMatch(/\ssrc="\.\/assets\/[^"]+\.js"/);
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=|data:/i);
    const css = readdirSync(join(webDir, 'assets')).filter((name) => name.endsWith('.css'));
    for (const name of css) expect(readFileSync(join(webDir, 'assets', name), 'utf8')).not.toContain('data:');
  });

  it('still does its work: a login (OPAQUE in wasm) shows the account, with no violation at all', async () => {
    const { client } = await createVerifiedAccount(server, 'csp-login@example.com', PASSWORD);
    const expected = (await client.logIn('csp-login@example.com', PASSWORD)).kBFingerprint;
    const { context, page, errors } = await openPage();
    try {
      await page.goto(`${server.url}/#/login`);
      await logIn(page, 'csp-login@example.com', PASSWORD);
      expect(await page.getByTestId('kb-fingerprint').textContent()).toBe(expected);
      expect(await violations(page)).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('cannot be framed by another site: the frame never holds the app', async () => {
    const { context, page, console } = await openPage();
    try {
      await page.goto(`${unlistedApp.origin}/`);
      const loaded = page.waitForEvent('framenavigated', { predicate: (frame) => frame !== page.mainFrame() });
      await page.evaluate((url) => {
        const frame = document.createElement('iframe');
        frame.src = url;
        document.body.append(frame);
      }, `${server.url}/#/login`);
      const frame = await loaded;
      await frame.waitForLoadState();
      expect(frame.url()).not.toContain(server.url);
      expect(await frame.locator('#screen').count()).toBe(0);
      expect(console.join('\n')).toMatch(/frame-ancestors 'none'/);
    } finally {
      await context.close();
    }
  });
});

describe('the API documentation at /docs', () => {
  it('loads Swagger UI with every operation listed and no violation (its data: icons and inline style allowed there only)', async () => {
    const { context, page, errors } = await openPage();
    try {
      await page.goto(`${server.url}/docs`);
      await page.locator('.swagger-ui .info .title', { hasText: 'Latchkey' }).waitFor();
      await page.locator('.opblock-summary-path', { hasText: '/v1/session/login/finish' }).waitFor();
      // Icons are drawn as the page settles; give them a moment to be refused if they would be.
      await page.locator('.opblock-tag').first().click();
      await page.waitForTimeout(500);
      expect(await violations(page)).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

describe('the SDK from a third-party web app', () => {
  it('works from a listed origin: signs up, verifies, reads the code of a refusal, logs in, and holds the same kB as in Node', async () => {
    const email = 'third-party@example.com';
    const { context, page, errors } = await openPage();
    try {
      await page.goto(`${listedApp.origin}/`);
      await page.waitForFunction(() => 'LatchkeyClient' in window);
      const before = server.smtp.messages.length;
      const signedUp = await page.evaluate(
        async ({ serverUrl, keyStretching, email, password }) => {
          const { LatchkeyClient } = window as unknown as {
            LatchkeyClient: typeof import('@latchkey/client').LatchkeyClient;
          };
          return (await new LatchkeyClient({ serverUrl, keyStretching }).signUp(email, password)).accountId;
        },
        { serverUrl: server.url, keyStretching: TEST_KEY_STRETCHING, email, password: PASSWORD },
      );
      const code = await server.smtp.codeFor(email, { after: before });
      const inPage = await page.evaluate(
        async ({ serverUrl, keyStretching, email, password, code }) => {
          const { LatchkeyClient } = window as unknown as {
            LatchkeyClient: typeof import('@latchkey/client').LatchkeyClient;
          };
          const client = new LatchkeyClient({ serverUrl, keyStretching });
          await client.verifyEmail(email, code);
          // The server's refusals reach the page too, as their codes, not as a failed fetch.
          const wrong = await client.logIn(email, `${password}!`).then(
            () => 'logged in',
            (error: { code?: string }) => error.code,
          );
          const session = await client.logIn(email, password);
          const account = await session.account();
          return { wrong, accountId: session.accountId, email: account.email, kB: Array.from(session.kB) };
        },
        { serverUrl: server.url, keyStretching: TEST_KEY_STRETCHING, email, password: PASSWORD, code },
      );
      expect(inPage.wrong).toBe('LK_LOGIN_FAILED');
      expect(inPage.accountId).toBe(signedUp);
      expect(inPage.email).toBe(email);
      const inNode = await server.client().logIn(email, PASSWORD);
      expect(toBase64Url(Uint8Array.from(inPage.kB))).toBe(toBase64Url(inNode.kB));
      expect(fromBase64Url(toBase64Url(inNode.kB))).toHaveLength(32);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('fails cleanly from an unlisted origin: LK_NETWORK naming the origin and LATCHKEY_CORS_ORIGINS, nothing done', async () => {
    const email = 'not-listed@example.com';
    const { context, page, errors } = await openPage();
    try {
      await page.goto(`${unlistedApp.origin}/`);
      await page.waitForFunction(() => 'LatchkeyClient' in window);
      const database = join(server.dir, 'latchkey.db');
      const stored = snapshotDatabase(database);
      const before = server.smtp.messages.length;
      const failure = await page.evaluate(
        async ({ serverUrl, keyStretching, email, password }) => {
          const { LatchkeyClient } = window as unknown as {
            LatchkeyClient: typeof import('@latchkey/client').LatchkeyClient;
          };
          try {
            await new LatchkeyClient({ serverUrl, keyStretching }).signUp(email, password);
            return undefined;
          } catch (error) {
            const { code, message, details } = error as { code: string; message: string; details: unknown };
            return { code, message, details };
          }
        },
        { serverUrl: server.url, keyStretching: TEST_KEY_STRETCHING, email, password: PASSWORD },
      );
      expect(failure?.code).toBe('LK_NETWORK');
      expect(failure?.message).toContain(unlistedApp.origin);
      expect(failure?.message).toContain('LATCHKEY_CORS_ORIGINS');
      expect(failure?.details).toEqual({ reason: 'Failed to fetch', pageOrigin: unlistedApp.origin });
      // The preflight was refused, so the sign-up itself was never sent: not a row changed, no code mailed.
      expect(snapshotDatabase(database)).toEqual(stored);
      expect(server.smtp.messages.slice(before).filter((mail) => mail.to.includes(email))).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
