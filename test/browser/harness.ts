import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll } from 'vitest';
import { startTestServer, TEST_KEY_STRETCHING_SPEC, type TestServer } from '../support/server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Debian's own Chromium: nothing is downloaded (no `playwright install`). */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Fails with the remedy when the machine lacks Debian's Chromium (`.ci/run` installs it). */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
}

/**
 * The production build of the app, exactly as `npm run build:web` makes it, into a private directory:
 * built, as an operator of a server on a non-default setting must, with LATCHKEY_KEY_STRETCHING set to
 * the test servers' cheap one, which the app then pins (unpinned, the SDK would refuse it).
 */
export async function buildWebApp(keyStretching = TEST_KEY_STRETCHING_SPEC): Promise<string> {
  const webDir = mkdtempSync(join(tmpdir(), 'latchkey-web-'));
  const before = process.env.LATCHKEY_KEY_STRETCHING;
  process.env.LATCHKEY_KEY_STRETCHING = keyStretching;
  try {
    await build({
      configFile: join(ROOT, 'packages/web/vite.config.ts'),
      mode: 'production',
      logLevel: 'warn',
      build: { outDir: webDir, emptyOutDir: true },
    });
  } finally {
    if (before === undefined) delete process.env.LATCHKEY_KEY_STRETCHING;
    else process.env.LATCHKEY_KEY_STRETCHING = before;
  }
  return webDir;
}

export async function launchChromium(): Promise<Browser> {
  requireChromium();
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** A built web app, the test server that serves it, and Chromium to open it: see {@link useWebApp}. */
export interface WebApp {
  readonly server: TestServer;
  readonly browser: Browser;
  readonly webDir: string;
}

/**
 * Builds the web app (with `keyStretching` pinned, as {@link buildWebApp}), serves it from a test
 * server (on the clock `now`, if given) and launches Chromium, before the file's tests; closes and
 * removes them all after. Its fields are there once the tests run.
 */
export function useWebApp(options: { keyStretching?: string; now?: () => number } = {}): WebApp {
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  let webDir: string | undefined;
  beforeAll(async () => {
    webDir = await buildWebApp(options.keyStretching);
    server = await startTestServer({ webDir }, options.now === undefined ? {} : { now: options.now });
    browser = await launchChromium();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (webDir !== undefined) rmSync(webDir, { recursive: true, force: true });
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useWebApp: the web app is not started yet (used outside a test?)');
    return value;
  };
  return {
    get server() {
      return started(server);
    },
    get browser() {
      return started(browser);
    },
    get webDir() {
      return started(webDir);
    },
  };
}

/** A tab of the web app: see {@link openTab}. */
export interface Tab {
  context: BrowserContext;
  page: Page;
  /** Uncaught exceptions in the page; every test ends by asserting there were none. */
  errors: string[];
}

/**
 * A tab in a browser context of its own (its own sessionStorage and IndexedDB, so its own session and
 * keystore: another device), at `route` of the app. It records every text a status region ever shows,
 * so a progress message that lasts a moment is still seen, and the page's uncaught exceptions.
 */
export async function openTab(
  web: WebApp,
  route: string,
  options: { stepMs: number; viewport: { width: number; height: number }; downloadsAndClipboard?: boolean },
): Promise<Tab> {
  const context = await web.browser.newContext({
    viewport: options.viewport,
    ...(options.downloadsAndClipboard === true ? { acceptDownloads: true } : {}),
  });
  context.setDefaultTimeout(options.stepMs);
  if (options.downloadsAndClipboard === true) {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: web.server.url });
  }
  await recordStatuses(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${web.server.url}/#/${route}`);
  return { context, page, errors };
}

/**
 * Waits for an alert region (the page's, or one inside `within`) to show the error `code`, and returns
 * the sentence the user reads. The code itself is kept apart from the sentence, in `data-code`.
 */
export async function alertWith(page: Page, code: string, within?: Locator): Promise<string> {
  const notice = (within ?? page).locator(`[role="alert"] [data-code="${code}"]`);
  await notice.waitFor();
  return (await notice.locator('.message').textContent()) ?? '';
}

/** Waits for a status region (the page's, or one inside `within`) to show `text`. */
export async function statusWith(page: Page, text: string, within?: Locator): Promise<void> {
  await (within ?? page).getByRole('status').filter({ hasText: text }).waitFor();
}

/** A panel of the page, by its heading: where an action's messages must show. */
export function section(page: Page, heading: string): Locator {
  return page.getByRole('region', { name: heading, exact: true });
}

/**
 * Records, from the page's first script on, every text any status region shows, with the heading of
 * the panel it is in (or `page` for the top one): a progress message that lasts a moment is still seen.
 */
export async function recordStatuses(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const log: Array<{ where: string; text: string }> = [];
    const last = new WeakMap<Element, string>();
    Object.assign(window, { __statusLog: log });
    const scan = () => {
      for (const region of document.querySelectorAll('[role="status"]')) {
        const text = region.textContent ?? '';
        if (text === '' || last.get(region) === text) continue;
        last.set(region, text);
        const panel = region.closest('section');
        const heading = panel?.querySelector('h2')?.textContent;
        log.push({ where: heading ?? 'page', text });
      }
    };
    document.addEventListener('DOMContentLoaded', () => {
      new MutationObserver(scan).observe(document.body, { childList: true, characterData: true, subtree: true });
    });
  });
}

/** What {@link recordStatuses} has seen so far. */
export function statusLog(page: Page): Promise<Array<{ where: string; text: string }>> {
  return page.evaluate(
    () => (window as unknown as { __statusLog: Array<{ where: string; text: string }> }).__statusLog,
  );
}

/** True when `locator`'s box lies wholly inside the viewport: where the user is looking. */
export async function inView(page: Page, locator: Locator): Promise<boolean> {
  const box = await locator.boundingBox();
  const viewport = page.viewportSize();
  if (box === null || viewport === null) return false;
  return box.y >= 0 && box.x >= 0 && box.y + box.height <= viewport.height && box.x + box.width <= viewport.width;
}

/** Fills and submits the log-in form. */
export async function logIn(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}
