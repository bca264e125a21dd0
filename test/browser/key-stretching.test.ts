import { join } from 'node:path';
import { ERRORS } from '@latchkey/core';
import { describe, expect, it } from 'vitest';
import { snapshotDatabase } from '../support/db-snapshot.js';
import { alertWith, section, useWebApp } from './harness.js';

/**
 * Issue 8 in the browser: a web app built without a pinned key stretching (as `npm run build:web`
 * makes it by default), served by a server that advertises a setting below the floor (the test
 * servers' 1 MiB × 1), refuses to sign up and tells the person why, in the sign-up panel.
 */

/** Unpinned: built with no LATCHKEY_KEY_STRETCHING, as `npm run build:web` is by default. */
const web = useWebApp({ keyStretching: '' });

describe('the unpinned web app against a server advertising weak key stretching', () => {
  it('shows LK_KDF_TOO_WEAK and its sentence at sign-up, and creates no account', async () => {
    const context = await web.browser.newContext();
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    const before = snapshotDatabase(join(web.server.dir, 'latchkey.db'));

    await page.goto(`${web.server.url}/#/signup`);
    await page.getByLabel('Email', { exact: true }).fill('web-kdf@example.com');
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await page.getByLabel('Confirm password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();

    const sentence = await alertWith(page, 'LK_KDF_TOO_WEAK', section(page, 'Create an account'));
    expect(sentence).toBe(ERRORS.LK_KDF_TOO_WEAK.message);
    expect(snapshotDatabase(join(web.server.dir, 'latchkey.db'))).toEqual(before);
    expect(errors).toEqual([]);
    await context.close();
  });
});
