import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FRESH_AUTH_MS } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliError, cliJson, lines } from '../support/cli-process.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * Issue 8 in the CLI: deleting or replacing a backup, or writing over its keys in secret storage
 * (enabling again, a new recovery key), needs a fresh password check on the server. Run
 * unlocked (LATCHKEY_SESSION, no password typed for the command) with the session's last password
 * check long past, the CLI asks for the password and the delete goes through; without an answer, it
 * stops before anything is deleted.
 */
describe('the CLI reauthenticates before deleting or replacing a backup', () => {
  let server: TestServer;
  /** Added to the server's clock: past FRESH_AUTH_MS, the saved session's password check is stale. */
  let skew = 0;
  const dirs: string[] = [];
  const email = 'cli-reauth@example.com';
  const password = 'cli reauth password';
  let home: string;
  let env: { LATCHKEY_SESSION: string };

  beforeAll(async () => {
    server = await startTestServer({}, { now: () => Date.now() + skew });
    await createVerifiedAccount(server, email, password);
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-reauth-'));
    dirs.push(dir);
    home = join(dir, 'state');
    await cliJson(['account', 'login', email, '--server', server.url], home, lines(password));
    const { session } = (await cliJson(['unlock'], home, lines(password))) as { session: string };
    env = { LATCHKEY_SESSION: session };
  });
  afterAll(async () => {
    await server.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const status = async () => (await cliJson(['backup', 'status'], home, '', env)) as { version?: string };

  it('replaces an unlocked backup after asking for the password, even long after the last check', async () => {
    skew = 0;
    const first = await cliJson(['backup', 'enable'], home, '', env);
    skew = FRESH_AUTH_MS + 1;
    // No answer to the password prompt: nothing is changed.
    expect((await cliError(['backup', 'enable', '--replace'], home, '', env)).code).toBe('LK_CANCELLED');
    expect((await status()).version).toBe(first.version);
    const replaced = await cliJson(['backup', 'enable', '--replace', '--password-stdin'], home, lines(password), env);
    expect(replaced).toMatchObject({ replaced: { version: first.version } });
    expect((await status()).version).toBe(replaced.version);
  });

  it('deletes an unlocked backup after asking for the password, and not without it', async () => {
    skew = FRESH_AUTH_MS + 1;
    const { version } = await status();
    expect(version).toEqual(expect.any(String));
    expect((await cliError(['backup', 'delete', '--yes'], home, '', env)).code).toBe('LK_CANCELLED');
    expect(await status()).toMatchObject({ enabled: true, version });
    const wrong = await cliError(['backup', 'delete', '--yes', '--password-stdin'], home, lines('wrong'), env);
    expect(wrong.code).toBe('LK_LOGIN_FAILED');
    expect(await status()).toMatchObject({ enabled: true, version });
    expect(await cliJson(['backup', 'delete', '--yes', '--password-stdin'], home, lines(password), env)).toEqual({
      deleted: true,
      version,
    });
    expect(await status()).toMatchObject({ enabled: false });
  });

  it('enables again over the keys the deleted backup left, after asking for the password', async () => {
    // The delete above left secret storage (the recovery key's description, the backup secret):
    // enabling writes over them, which a stale session alone may not.
    skew = 2 * FRESH_AUTH_MS + 2;
    expect((await cliError(['backup', 'enable'], home, '', env)).code).toBe('LK_CANCELLED');
    expect(await status()).toMatchObject({ enabled: false });
    const enabled = await cliJson(['backup', 'enable', '--password-stdin'], home, lines(password), env);
    expect((await status()).version).toBe(enabled.version);
  });

  it('replaces the recovery key of an unlocked session after asking for the password, and not without it', async () => {
    skew = 3 * FRESH_AUTH_MS + 3;
    expect((await cliError(['recovery', 'show-new'], home, '', env)).code).toBe('LK_CANCELLED');
    const wrong = await cliError(['recovery', 'show-new', '--password-stdin'], home, lines('wrong'), env);
    expect(wrong.code).toBe('LK_LOGIN_FAILED');
    const { recoveryKey } = (await cliJson(
      ['recovery', 'show-new', '--password-stdin'],
      home,
      lines(password),
      env,
    )) as {
      recoveryKey: string;
    };
    expect(await cliJson(['recovery', 'verify', recoveryKey], home, '', env)).toEqual({ valid: true });
  });
});
