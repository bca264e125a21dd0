import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build } from 'vite';

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

/** The production build of the app, exactly as `npm run build:web` makes it, into a private directory. */
export async function buildWebApp(): Promise<string> {
  const webDir = mkdtempSync(join(tmpdir(), 'latchkey-web-'));
  await build({
    configFile: join(ROOT, 'packages/web/vite.config.ts'),
    mode: 'production',
    logLevel: 'warn',
    build: { outDir: webDir, emptyOutDir: true },
  });
  return webDir;
}

export async function launchChromium(): Promise<Browser> {
  requireChromium();
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Waits for the page's one alert region to show `code` and returns its whole text. */
export async function alertWith(page: Page, code: string): Promise<string> {
  const alert = page.getByRole('alert');
  await alert.filter({ hasText: code }).waitFor();
  return (await alert.textContent()) ?? '';
}

/** Waits for the page's status region to show `text`. */
export async function statusWith(page: Page, text: string): Promise<void> {
  await page.getByRole('status').filter({ hasText: text }).waitFor();
}

/** Fills and submits the log-in form. */
export async function logIn(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}
