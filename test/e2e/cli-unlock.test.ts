import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fromBase64Url, toBase64, toBase64Url, toHex } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliError, cliJson, lines, MAIN, start } from '../support/cli-process.js';
import {
  createVerifiedAccount,
  startTestServer,
  TEST_KEY_STRETCHING_SPEC,
  type TestServer,
} from '../support/server.js';

/**
 * `latchkey unlock` (as Bitwarden's `bw unlock`): the password once, then LATCHKEY_SESSION opens the
 * locally sealed kA and kB for the backup, recovery and keys commands until it expires or is locked.
 */
describe('latchkey unlock and lock', () => {
  let server: TestServer;
  const dirs: string[] = [];
  const email = 'unlock@example.com';
  const password = 'unlock password';
  let home: string;

  const newHome = () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-unlock-'));
    dirs.push(dir);
    return join(dir, 'state');
  };
  const unlockedFile = (h: string) => join(h, 'unlocked.json');
  const withKey = (session: string) => ({ LATCHKEY_SESSION: session });
  const unlock = async (h: string, ...flags: string[]) =>
    (await cliJson(['unlock', ...flags], h, lines(password))) as { session: string; expiresAt: number };

  beforeAll(async () => {
    server = await startTestServer();
    await createVerifiedAccount(server, email, password);
    home = newHome();
    await cliJson(['account', 'login', email, '--server', server.url], home, lines(password));
  });
  afterAll(async () => {
    await server.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('asks for the password once; then backup, recovery and keys commands ask for none', async () => {
    const before = Date.now();
    const { session, expiresAt } = await unlock(home);
    expect(fromBase64Url(session)).toHaveLength(32);
    // One hour by default.
    expect(expiresAt).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 3_600_000);

    // The sealed file: 0600, and neither kA, kB nor the session key in it in any encoding.
    const file = unlockedFile(home);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const keys = await server.client().logIn(email, password);
    for (const key of [keys.kA, keys.kB, fromBase64Url(session)]) {
      for (const encoded of [toHex(key), toBase64(key), toBase64Url(key)]) expect(text).not.toContain(encoded);
    }
    await keys.logOut();

    // No stdin at all: a password prompt would end in LK_CANCELLED.
    const env = withKey(session);
    const enabled = await cliJson(['backup', 'enable'], home, '', env);
    expect(enabled).toMatchObject({ version: expect.any(String), recoveryKey: expect.any(String) });
    expect(await cliJson(['backup', 'status'], home, '', env)).toMatchObject({ enabled: true, trusted: true });
    expect(await cliJson(['recovery', 'verify', enabled.recoveryKey as string], home, '', env)).toEqual({
      valid: true,
    });
    // Only the file's passphrase is asked for.
    const exported = join(dirname(home), 'keys.txt');
    expect(
      await cliJson(['keys', 'export', exported, '--password-stdin'], home, lines('file passphrase'), env),
    ).toEqual({ file: exported, exported: 0 });

    // Without LATCHKEY_SESSION the password is asked for as before.
    expect((await cliError(['backup', 'status'], home)).code).toBe('LK_CANCELLED');
    expect(await cliJson(['backup', 'status'], home, lines(password))).toMatchObject({ enabled: true });
  });

  it('prints an export line a shell can eval, as the README shows', async () => {
    const h = newHome();
    await cliJson(['account', 'login', email, '--server', server.url], h, lines(password));
    const human = await cli(['unlock'], h, lines(password));
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^export LATCHKEY_SESSION="[A-Za-z0-9_-]{43}"\n$/);
    expect(human.stderr).toMatch(/Unlocked until .* UTC\./);

    const node = `'${process.execPath}' --import tsx '${MAIN}'`;
    const shell = start(
      'sh',
      ['-c', `eval "$(${node} unlock --password-stdin)" && ${node} backup status --json </dev/null`],
      { LATCHKEY_HOME: h, LATCHKEY_KEY_STRETCHING: TEST_KEY_STRETCHING_SPEC },
    );
    shell.child.stdin.end(lines(password));
    const done = await shell.done;
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ enabled: true });
  });

  it('refuses a wrong, malformed, stale or tampered key, and an unlock that has expired, with their codes', async () => {
    const { session } = await unlock(home);
    const other = toBase64Url(new Uint8Array(32).fill(9));
    expect((await cliError(['backup', 'status'], home, '', withKey(other))).code).toBe('LK_UNLOCK_KEY_INVALID');
    expect((await cliError(['backup', 'status'], home, '', withKey('not a key'))).code).toBe('LK_UNLOCK_KEY_INVALID');

    // Moving the expiry in the file, without the key, makes it open nothing.
    const file = unlockedFile(home);
    const original = readFileSync(file, 'utf8');
    const body = JSON.parse(original) as { expiresAt: number };
    writeFileSync(file, JSON.stringify({ ...body, expiresAt: body.expiresAt + 86_400_000 }), { mode: 0o600 });
    expect((await cliError(['backup', 'status'], home, '', withKey(session))).code).toBe('LK_UNLOCK_KEY_INVALID');
    writeFileSync(file, original, { mode: 0o600 });
    expect(await cliJson(['backup', 'status'], home, '', withKey(session))).toMatchObject({ enabled: true });

    // A new unlock makes the old key worthless.
    const renewed = await unlock(home);
    expect((await cliError(['backup', 'status'], home, '', withKey(session))).code).toBe('LK_UNLOCK_KEY_INVALID');

    const brief = await unlock(home, '--expires', '1s');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, brief.expiresAt - Date.now()) + 50));
    const expired = await cliError(['backup', 'status'], home, '', withKey(brief.session));
    expect(expired).toMatchObject({ code: 'LK_UNLOCK_EXPIRED', details: { expiresAt: brief.expiresAt } });
    expect(expired.message).toContain('run `latchkey unlock` again, or unset LATCHKEY_SESSION');
    expect(existsSync(file)).toBe(false);
    expect((await cliError(['backup', 'status'], home, '', withKey(renewed.session))).code).toBe('LK_LOCKED');

    const bad = await cli(['unlock', '--expires', '2w', '--json'], home, lines(password));
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: { code: 'LK_USAGE' } });
  });

  it('ends at `latchkey lock` and at logout: the key in the environment then opens nothing', async () => {
    const { session } = await unlock(home);
    expect(await cliJson(['lock'], home)).toEqual({ locked: true });
    expect(existsSync(unlockedFile(home))).toBe(false);
    const locked = await cliError(['backup', 'status'], home, '', withKey(session));
    expect(locked.code).toBe('LK_LOCKED');
    expect(await cliJson(['lock'], home)).toEqual({ locked: false });

    const h = newHome();
    await cliJson(['account', 'login', email, '--server', server.url], h, lines(password));
    const again = await unlock(h);
    await cliJson(['account', 'logout'], h);
    expect(existsSync(unlockedFile(h))).toBe(false);
    await cliJson(['account', 'login', email, '--server', server.url], h, lines(password));
    expect((await cliError(['backup', 'status'], h, '', withKey(again.session))).code).toBe('LK_LOCKED');
  });
});
