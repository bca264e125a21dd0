import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { keystoreFilePath } from '@latchkey/cli';
import { exportRoomKeys, importRoomKeys, type LocalKeystore, type RoomKey } from '@latchkey/client';
import { decodeRecoveryKey, encodeRecoveryKey, toHex } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliError, cliJson, lines } from '../support/cli-process.js';
import { makeRoomKeys } from '../support/room-keys.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/** The display form: 12 groups of 4 base58 characters. */
const RECOVERY_KEY_FORM = /^Es[1-9A-HJ-NP-Za-km-z]{2}( [1-9A-HJ-NP-Za-km-z]{4}){11}$/;
/** A well-formed recovery key that belongs to no account here. */
const STRANGER_KEY = encodeRecoveryKey(new Uint8Array(32).fill(7));

/** The recovery key with its last character mistyped so that (like most typos) its parity check fails. */
function typo(recoveryKey: string): string {
  for (const char of 'abcdefghijk') {
    const typed = `${recoveryKey.slice(0, -1)}${char}`;
    try {
      decodeRecoveryKey(typed);
    } catch (error) {
      if ((error as { details?: { reason?: string } }).details?.reason === 'parity') return typed;
    }
  }
  throw new Error('no single-character typo fails the parity check');
}

const bySession = (a: RoomKey, b: RoomKey) => (a.session_id < b.session_id ? -1 : a.session_id > b.session_id ? 1 : 0);
const sorted = (keys: readonly RoomKey[]) => [...keys].sort(bySession);

describe('the latchkey backup, recovery and keys commands', () => {
  let server: TestServer;
  const dirs: string[] = [];
  /** A fresh LATCHKEY_HOME: a device of its own, with its own session file and keystore. */
  const newHome = () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-backup-'));
    dirs.push(dir);
    return join(dir, 'state');
  };
  /** Where the CLI keeps an account's keystore in `home`: the CLI's own rule, from its package. */
  const keystoreOf = (home: string, accountId: string) => keystoreFilePath({ LATCHKEY_HOME: home }, accountId);
  /** The account id of the session the CLI saved in `home`. */
  const savedAccountId = (home: string) =>
    (JSON.parse(readFileSync(join(home, 'session.json'), 'utf8')) as { accountId: string }).accountId;

  /** Opens a device's keystore file through the SDK, as the same account, for `work`. */
  async function onKeystore<T>(
    home: string,
    email: string,
    password: string,
    work: (keystore: LocalKeystore) => Promise<T>,
  ): Promise<T> {
    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(keystoreOf(home, session.accountId));
    try {
      return await work(keystore);
    } finally {
      await keystore.close();
      await session.logOut();
    }
  }
  const heldKeys = (home: string, email: string, password: string) =>
    onKeystore(home, email, password, async (keystore) =>
      sorted((await keystore.persistedRoomKeys()).map((stored) => stored.key)),
    );

  /** A new device: a LATCHKEY_HOME logged in with the CLI. */
  async function device(email: string, password: string): Promise<string> {
    const home = newHome();
    await cliJson(['account', 'login', email, '--server', server.url], home, lines(password));
    return home;
  }

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  describe('backup and recovery of one account', () => {
    const email = 'cli-backup@example.com';
    const password = 'backup password';
    const keys = makeRoomKeys(1200);
    let first: string;
    let version: string;
    let recoveryKey: string;

    beforeAll(async () => {
      await createVerifiedAccount(server, email, password);
      first = await device(email, password);
    });

    it('enables the backup, showing the recovery key once, and refuses a second one without --replace', async () => {
      expect(await cliJson(['backup', 'status'], first, lines(password))).toEqual({ enabled: false });
      expect((await cliError(['backup', 'status'], first, lines('wrong password'))).code).toBe('LK_LOGIN_FAILED');

      const enabled = await cliJson(['backup', 'enable'], first, lines(password));
      expect(enabled).toEqual({ version: expect.any(String), recoveryKey: expect.any(String), passphrase: false });
      version = enabled.version as string;
      recoveryKey = enabled.recoveryKey as string;
      expect(recoveryKey).toMatch(RECOVERY_KEY_FORM);
      expect(decodeRecoveryKey(recoveryKey)).toHaveLength(32);

      const again = await cliError(['backup', 'enable'], first, lines(password));
      expect(again).toMatchObject({ code: 'LK_BACKUP_EXISTS', details: { version } });
      expect(await cliJson(['backup', 'status'], first, lines(password))).toEqual({
        enabled: true,
        version,
        count: 0,
        pending: 0,
        trusted: true,
      });
      // The keystore is a file of this LATCHKEY_HOME, beside the session.
      expect(existsSync(keystoreOf(first, savedAccountId(first)))).toBe(true);
    });

    it("uploads the device's keys with a progress line per tenth, and only once", async () => {
      // Keys arrive in the CLI's keystore as a messaging app would add them: through the SDK, same file.
      await onKeystore(first, email, password, (keystore) => keystore.addRoomKeys(keys.map((key) => ({ key }))));
      expect(await cliJson(['backup', 'status'], first, lines(password))).toMatchObject({ count: 0, pending: 1200 });

      // stderr is a pipe here, not a terminal: one line per tenth reached, batches of 1,000 and 200.
      const uploaded = await cli(['backup', 'upload'], first, lines(password));
      expect(uploaded.code, uploaded.stderr).toBe(0);
      expect(uploaded.stdout).toBe(`Uploaded 1,200 keys to backup version ${version}.\n`);
      const progress = uploaded.stderr.split('\n').filter((line) => line.startsWith('['));
      expect(progress).toHaveLength(2);
      expect(progress[0]).toMatch(/^\[#{8}\.{2}\] 1,000\/1,200 keys · [\d,]+ keys\/s · \d+s left$/);
      expect(progress[1]).toMatch(/^\[#{10}\] 1,200\/1,200 keys · [\d,]+ keys\/s · done$/);

      expect(await cliJson(['backup', 'upload'], first, lines(password))).toEqual({ uploaded: 0, version });
      expect(await cliJson(['backup', 'status'], first, lines(password))).toEqual({
        enabled: true,
        version,
        count: 1200,
        pending: 0,
        trusted: true,
      });
    });

    it('restores on a new device with the recovery key; a wrong or mistyped key imports nothing', async () => {
      const second = await device(email, password);
      const stranger = await cliError(['backup', 'restore', '--recovery-key', STRANGER_KEY], second, lines(password));
      expect(stranger).toMatchObject({ code: 'LK_BAD_RECOVERY_KEY', details: { reason: 'mismatch' } });
      // Mistyped: refused before the password is even asked for (stdin is empty).
      const mistyped = await cliError(['backup', 'restore', '--recovery-key', typo(recoveryKey)], second);
      expect(mistyped).toMatchObject({ code: 'LK_BAD_RECOVERY_KEY', details: { reason: 'parity' } });
      // Asked for when not given: the answer after the password.
      const prompted = await cliError(['backup', 'restore'], second, lines(password, STRANGER_KEY));
      expect(prompted.code).toBe('LK_BAD_RECOVERY_KEY');
      expect(await heldKeys(second, email, password)).toEqual([]);

      const restored = await cliJson(
        ['backup', 'restore', '--recovery-key', recoveryKey, '--password-stdin'],
        second,
        lines(password),
      );
      expect(restored).toEqual({ version, total: 1200, imported: 1200, failed: 0 });
      expect(await heldKeys(second, email, password)).toEqual(sorted(keys));
      // The restored keys came from the backup: nothing to upload again.
      expect(await cliJson(['backup', 'status'], second, lines(password))).toMatchObject({ pending: 0 });

      // The same again in words, with the progress line on stderr.
      const human = await cli(['backup', 'restore'], second, lines(password, recoveryKey));
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toBe(
        `Restored from backup version ${version}: 0 keys imported, 1,200 already held (of 1,200).\n`,
      );
      expect(human.stderr).toContain('[##########] 1,200/1,200 keys');
    });

    it('restores through the password login alone with --trusted-device', async () => {
      const third = await device(email, password);
      expect(await cliJson(['backup', 'restore', '--trusted-device'], third, lines(password))).toEqual({
        version,
        total: 1200,
        imported: 1200,
        failed: 0,
      });
      expect(await heldKeys(third, email, password)).toEqual(sorted(keys));
      const both = await cli(['backup', 'restore', '--trusted-device', '--passphrase', '--json'], third);
      expect(both.code).toBe(2);
      expect(JSON.parse(both.stdout)).toMatchObject({ error: { code: 'LK_USAGE' } });
    });

    it('verifies recovery keys: right, wrong and mistyped, given or asked for', async () => {
      expect(await cliJson(['recovery', 'verify', recoveryKey], first, lines(password))).toEqual({ valid: true });
      expect(await cliJson(['recovery', 'verify'], first, lines(password, recoveryKey))).toEqual({ valid: true });
      // The grouping is for people: without the spaces it is the same key.
      const unspaced = recoveryKey.replaceAll(' ', '');
      expect(await cliJson(['recovery', 'verify', unspaced], first, lines(password))).toEqual({ valid: true });

      const wrong = await cliError(['recovery', 'verify', STRANGER_KEY], first, lines(password));
      expect(wrong).toMatchObject({ code: 'LK_BAD_RECOVERY_KEY', details: { reason: 'mismatch' } });
      expect(await cliError(['recovery', 'verify', typo(recoveryKey)], first)).toMatchObject({
        code: 'LK_BAD_RECOVERY_KEY',
        details: { reason: 'parity' },
      });
      expect(await cliError(['recovery', 'verify'], first, lines(password, 'EsT0 not a key'))).toMatchObject({
        code: 'LK_BAD_RECOVERY_KEY',
        details: { reason: 'base58' },
      });
      expect(await cliError(['recovery', 'verify', recoveryKey.slice(0, 30)], first)).toMatchObject({
        code: 'LK_BAD_RECOVERY_KEY',
        details: { reason: 'length' },
      });

      const human = await cli(['recovery', 'verify', STRANGER_KEY], first, lines(password));
      expect(human.code).toBe(1);
      expect(human.stdout).toBe('');
      expect(human.stderr).toMatch(/^error LK_BAD_RECOVERY_KEY: Invalid/m);
    });

    it('replaces the recovery key: the old one is refused, the new one (or its passphrase) restores', async () => {
      const shown = await cli(['recovery', 'show-new'], first, lines(password));
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain('shown only this once');
      const newKey = /^ {4}(Es\S+(?: \S{4}){11})$/m.exec(shown.stdout)?.[1] as string;
      expect(newKey).toMatch(RECOVERY_KEY_FORM);
      expect(newKey).not.toBe(recoveryKey);
      expect(shown.stdout.split(newKey)).toHaveLength(2); // printed once

      expect(await cliError(['recovery', 'verify', recoveryKey], first, lines(password))).toMatchObject({
        code: 'LK_BAD_RECOVERY_KEY',
        details: { reason: 'mismatch' },
      });
      expect(await cliJson(['recovery', 'verify', newKey], first, lines(password))).toEqual({ valid: true });
      // The backup is the same version, with every key still in it.
      expect(await cliJson(['backup', 'status'], first, lines(password))).toMatchObject({ version, count: 1200 });

      const fourth = await device(email, password);
      const old = await cliError(['backup', 'restore', '--recovery-key', recoveryKey], fourth, lines(password));
      expect(old).toMatchObject({ code: 'LK_BAD_RECOVERY_KEY', details: { reason: 'mismatch' } });
      expect(await heldKeys(fourth, email, password)).toEqual([]);
      expect(await cliJson(['backup', 'restore', '--recovery-key', newKey], fourth, lines(password))).toMatchObject({
        version,
        imported: 1200,
        failed: 0,
      });
      expect(await heldKeys(fourth, email, password)).toEqual(sorted(keys));

      // Replaced again, now from a passphrase: the passphrase and its key restore; the previous key does not.
      expect(
        (await cliError(['recovery', 'show-new', '--passphrase'], first, lines(password, 'a phrase', 'b phrase'))).code,
      ).toBe('LK_PASSWORD_MISMATCH');
      const withPhrase = await cliJson(
        ['recovery', 'show-new', '--passphrase'],
        first,
        lines(password, 'a backup phrase', 'a backup phrase'),
      );
      expect(withPhrase).toEqual({ version, recoveryKey: expect.stringMatching(RECOVERY_KEY_FORM), passphrase: true });
      expect(await cliError(['recovery', 'verify', newKey], first, lines(password))).toMatchObject({
        code: 'LK_BAD_RECOVERY_KEY',
      });
      expect(await cliJson(['recovery', 'verify', withPhrase.recoveryKey as string], first, lines(password))).toEqual({
        valid: true,
      });
      const fifth = await device(email, password);
      expect(
        (await cliError(['backup', 'restore', '--passphrase'], fifth, lines(password, 'not the phrase'))).code,
      ).toBe('LK_BAD_PASSPHRASE');
      expect(await heldKeys(fifth, email, password)).toEqual([]);
      expect(
        await cliJson(['backup', 'restore', '--passphrase'], fifth, lines(password, 'a backup phrase')),
      ).toMatchObject({ imported: 1200, failed: 0 });
      expect(await heldKeys(fifth, email, password)).toEqual(sorted(keys));
    });

    it('deletes the backup only when confirmed', async () => {
      const refused = await cliError(['backup', 'delete'], first, lines(password, 'no'));
      expect(refused.code).toBe('LK_CANCELLED');
      expect(await cliJson(['backup', 'status'], first, lines(password))).toMatchObject({ enabled: true, version });

      expect(await cliJson(['backup', 'delete'], first, lines(password, 'yes'))).toEqual({ deleted: true, version });
      expect(await cliJson(['backup', 'status'], first, lines(password))).toEqual({ enabled: false });
      expect((await cliError(['backup', 'delete', '--yes'], first, lines(password))).code).toBe('LK_BACKUP_NOT_FOUND');
      expect((await cliError(['backup', 'upload'], first, lines(password))).code).toBe('LK_BACKUP_NOT_FOUND');
      // The keys on the device stay.
      expect(await heldKeys(first, email, password)).toEqual(sorted(keys));
    });
  });

  describe('after a password reset', () => {
    const email = 'cli-reset@example.com';
    const keys = makeRoomKeys(150);

    it("refuses the device's old keystore, clears it when confirmed, and restores into a new one", async () => {
      const { client } = await createVerifiedAccount(server, email, 'password before');
      const home = await device(email, 'password before');
      await onKeystore(home, email, 'password before', (keystore) =>
        keystore.addRoomKeys(keys.map((key) => ({ key }))),
      );
      const { recoveryKey } = (await cliJson(['backup', 'enable'], home, lines('password before'))) as {
        recoveryKey: string;
      };
      expect(await cliJson(['backup', 'upload'], home, lines('password before'))).toMatchObject({ uploaded: 150 });

      const sent = server.smtp.messages.length;
      await client.requestReset(email);
      await client.completeReset(email, await server.smtp.codeFor(email, { after: sent }), 'password after');
      await cliJson(['account', 'login', email, '--server', server.url], home, lines('password after'));
      const file = keystoreOf(home, savedAccountId(home));

      const stale = await cliError(['backup', 'status'], home, lines('password after'));
      expect(stale).toMatchObject({ code: 'LK_KEYSTORE_KEY_CHANGED', details: { file } });
      expect(stale.message).toContain('latchkey keys clear');
      expect((await cliError(['keys', 'clear'], home, lines('no'))).code).toBe('LK_CANCELLED');
      expect(existsSync(file)).toBe(true);
      expect(await cliJson(['keys', 'clear'], home, lines('yes'))).toEqual({ file, cleared: true });
      expect(existsSync(file)).toBe(false);
      expect(await cliJson(['keys', 'clear', '--yes'], home)).toEqual({ file, cleared: false });

      // The login alone no longer opens the backup (its copy was under the old kB), nor is the backup's
      // signature this account's any more; the recovery key opens it and signs it again.
      const byLogin = await cliError(['backup', 'restore', '--trusted-device'], home, lines('password after'));
      expect(byLogin).toMatchObject({ code: 'LK_NO_RECOVERY_METHOD', details: { reason: 'kb-changed' } });
      expect(await cliJson(['backup', 'status'], home, lines('password after'))).toMatchObject({ trusted: false });
      expect((await cliError(['backup', 'upload'], home, lines('password after'))).code).toBe('LK_BACKUP_UNTRUSTED');
      expect(
        await cliJson(['backup', 'restore', '--recovery-key', recoveryKey], home, lines('password after')),
      ).toMatchObject({ total: 150, imported: 150, failed: 0 });
      expect(await heldKeys(home, email, 'password after')).toEqual(sorted(keys));
      expect(await cliJson(['backup', 'status'], home, lines('password after'))).toMatchObject({
        trusted: true,
        count: 150,
        pending: 0,
      });
    });

    it('starts over with --replace: the old backup is carried over to this device, then deleted', async () => {
      const home = await device(email, 'password after');
      const { version: old } = (await cliJson(['backup', 'status'], home, lines('password after'))) as {
        version: string;
      };
      const replaced = await cliJson(['backup', 'enable', '--replace'], home, lines('password after'));
      expect(replaced).toEqual({
        version: expect.any(String),
        recoveryKey: expect.stringMatching(RECOVERY_KEY_FORM),
        passphrase: false,
        replaced: { version: old, carriedOver: 150, unreadable: 0, total: 150 },
      });
      expect(await heldKeys(home, email, 'password after')).toEqual(sorted(keys));
      expect(await cliJson(['backup', 'upload'], home, lines('password after'))).toMatchObject({ uploaded: 150 });
      const human = await cli(['backup', 'enable', '--replace'], home, lines('password after'));
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toContain(`Backup version ${replaced.version as string} was replaced and deleted; 150 keys`);
    });
  });

  describe('replacing a backup the login cannot open', () => {
    const email = 'cli-unopenable@example.com';
    const password = 'unopenable password';
    const keys = makeRoomKeys(40);

    it('is refused unless given the old recovery key, and then its keys are kept', async () => {
      await createVerifiedAccount(server, email, password);
      // A backup set up elsewhere without access for logged-in devices.
      const elsewhere = await server.client().logIn(email, password);
      const store = await elsewhere.openKeystore(join(newHome(), 'elsewhere.db'));
      await store.addRoomKeys(keys.map((key) => ({ key })));
      const old = await elsewhere.keyBackup(store).enable({ trustLoggedInDevices: false });
      await elsewhere.keyBackup(store).uploadPending();
      await elsewhere.logOut();

      const home = await device(email, password);
      const refused = await cliError(['backup', 'enable', '--replace'], home, lines(password));
      expect(refused).toMatchObject({ code: 'LK_NO_RECOVERY_METHOD', details: { version: old.version, keys: 40 } });
      expect(refused.message).toContain('Nothing was changed');
      expect(await cliJson(['backup', 'status'], home, lines(password))).toMatchObject({ version: old.version });

      const kept = await cliJson(
        ['backup', 'enable', '--replace', '--old-recovery-key', old.recoveryKey],
        home,
        lines(password),
      );
      expect(kept).toMatchObject({ replaced: { version: old.version, carriedOver: 40, unreadable: 0, total: 40 } });
      expect(await heldKeys(home, email, password)).toEqual(sorted(keys));

      // Two ways to open the old backup at once is a usage error, found before anything is asked.
      const both = await cli(['backup', 'enable', '--replace', '--old-recovery-key', 'x', '--old-passphrase'], home);
      expect([both.code, both.stderr]).toEqual([2, expect.stringContaining('give one of --old-recovery-key')]);
      const alone = await cli(['backup', 'enable', '--discard-unreadable'], home);
      expect([alone.code, alone.stderr]).toEqual([
        2,
        expect.stringContaining('--discard-unreadable goes with --replace'),
      ]);
    });
  });

  describe('key export files', () => {
    const email = 'cli-keys@example.com';
    const password = 'keys password';
    const keys = makeRoomKeys(300);
    let home: string;
    let dir: string;

    beforeAll(async () => {
      await createVerifiedAccount(server, email, password);
      home = await device(email, password);
      dir = dirname(home);
    });

    it('imports a file an SDK (or Element) made; a wrong passphrase imports nothing', async () => {
      const source = newHome();
      const made = await onKeystore(source, email, password, async (keystore) => {
        await keystore.addRoomKeys(keys.map((key) => ({ key })));
        return exportRoomKeys(keystore, 'sdk passphrase', 1000);
      });
      const file = join(dir, 'from-sdk.txt');
      writeFileSync(file, made.text);

      const wrong = await cliError(['keys', 'import', file], home, lines(password, 'not the passphrase'));
      expect(wrong.code).toBe('LK_KEY_EXPORT_BAD_PASSPHRASE');
      expect(await heldKeys(home, email, password)).toEqual([]);

      expect(await cliJson(['keys', 'import', file], home, lines(password, 'sdk passphrase'))).toEqual({
        file,
        total: 300,
        imported: 300,
      });
      expect(await heldKeys(home, email, password)).toEqual(sorted(keys));
      expect(await cliJson(['keys', 'import', file], home, lines(password, 'sdk passphrase'))).toEqual({
        file,
        total: 300,
        imported: 0,
      });
      // A missing file is named, before any prompt (stdin is empty).
      const missing = join(dir, 'missing.txt');
      expect(await cliError(['keys', 'import', missing], home)).toMatchObject({
        code: 'LK_FILE_UNREADABLE',
        details: { file: missing, reason: 'ENOENT' },
      });
    });

    it('exports to a new 0600 file that reads back to the same bytes, and never overwrites without --force', async () => {
      const file = join(dir, 'export.txt');
      const mismatch = await cliError(['keys', 'export', file], home, lines(password, 'export phrase', 'other'));
      expect(mismatch.code).toBe('LK_PASSWORD_MISMATCH');
      expect(existsSync(file)).toBe(false);

      const exported = await cliJson(['keys', 'export', file], home, lines(password, 'export phrase', 'export phrase'));
      expect(exported).toEqual({ file, exported: 300 });
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const text = readFileSync(file, 'utf8');
      expect(text.startsWith('-----BEGIN MEGOLM SESSION DATA-----')).toBe(true);
      // No temporary file is left beside it.
      expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);

      // Read back through the SDK into a fresh keystore: the same keys, byte for byte.
      const reader = newHome();
      const readBack = await onKeystore(reader, email, password, async (keystore) => {
        expect(await importRoomKeys(keystore, text, 'export phrase')).toEqual({ total: 300, imported: 300 });
        return sorted((await keystore.persistedRoomKeys()).map((stored) => stored.key));
      });
      expect(readBack).toEqual(sorted(keys));
      expect(readBack.map((key) => toHex(Buffer.from(key.session_key, 'base64')))).toEqual(
        sorted(keys).map((key) => toHex(Buffer.from(key.session_key, 'base64'))),
      );

      // An existing file is refused before any prompt (stdin is empty), and stays as it was.
      const exists = await cliError(['keys', 'export', file], home);
      expect(exists).toMatchObject({ code: 'LK_FILE_EXISTS', details: { file } });
      expect(readFileSync(file, 'utf8')).toBe(text);
      const replaced = await cliJson(
        ['keys', 'export', file, '--force', '--password-stdin'],
        home,
        lines(password, 'second phrase'),
      );
      expect(replaced).toEqual({ file, exported: 300 });
      const second = readFileSync(file, 'utf8');
      expect(second).not.toBe(text);
      expect(statSync(file).mode & 0o777).toBe(0o600);

      // The CLI reads its own file back on another device.
      const other = await device(email, password);
      expect(await cliJson(['keys', 'import', file], other, lines(password, 'second phrase'))).toMatchObject({
        imported: 300,
      });
      expect(await heldKeys(other, email, password)).toEqual(sorted(keys));
      const noFile = await cli(['keys', 'export', '--json'], home);
      expect(noFile.code).toBe(2);
    });

    /** What a key file listener heard, in order: progress reports and the stretch. */
    type Heard = { phase: string; done: number; total: number; keysPerSecond: number; secondsLeft: number } | 'stretch';
    const listening = (heard: Heard[]) => ({
      onProgress: (p: Exclude<Heard, 'stretch'>) => heard.push({ ...p }),
      onStretch: () => heard.push('stretch'),
    });
    /** The progress reports of `phase`: more than one (batches), each done above the last, the last at `total`. */
    function expectRising(heard: Heard[], phase: string, total: number): void {
      const reports = heard.filter((h) => h !== 'stretch');
      expect(reports.length).toBeGreaterThan(1);
      for (const report of reports) {
        expect(report).toMatchObject({ phase, total });
        expect(Number.isFinite(report.keysPerSecond) && report.keysPerSecond >= 0).toBe(true);
      }
      const dones = reports.map((r) => r.done);
      expect(dones).toEqual([...new Set(dones)].sort((a, b) => a - b));
      expect(dones[0]).toBeGreaterThan(0);
      expect(dones.at(-1)).toBe(total);
      expect(reports.at(-1)?.secondsLeft).toBe(0);
    }

    it('reports export and import progress in batches, rising to the total; a bad file reports none and adds nothing', async () => {
      const many = makeRoomKeys(2500);
      const exportHeard: Heard[] = [];
      const made = await onKeystore(newHome(), email, password, async (keystore) => {
        await keystore.addRoomKeys(many.map((key) => ({ key })));
        return exportRoomKeys(keystore, 'many passphrase', 1000, listening(exportHeard));
      });
      expect(made.count).toBe(2500);
      expectRising(exportHeard, 'export', 2500);
      // The keys are read first, then the passphrase is stretched once.
      expect(exportHeard.at(-1)).toBe('stretch');
      expect(exportHeard.filter((h) => h === 'stretch')).toHaveLength(1);

      const importHeard: Heard[] = [];
      const reader = newHome();
      const held = await onKeystore(reader, email, password, async (keystore) => {
        expect(await importRoomKeys(keystore, made.text, 'many passphrase', listening(importHeard))).toEqual({
          total: 2500,
          imported: 2500,
        });
        return sorted((await keystore.persistedRoomKeys()).map((stored) => stored.key));
      });
      expect(held).toEqual(sorted(many));
      expect(importHeard[0]).toBe('stretch');
      expect(importHeard.filter((h) => h === 'stretch')).toHaveLength(1);
      expectRising(importHeard, 'import', 2500);

      // Again: every key is held, yet each is handled and counted.
      const againHeard: Heard[] = [];
      await onKeystore(reader, email, password, async (keystore) => {
        expect(await importRoomKeys(keystore, made.text, 'many passphrase', listening(againHeard))).toEqual({
          total: 2500,
          imported: 0,
        });
      });
      expectRising(againHeard, 'import', 2500);

      // A wrong passphrase, or a file damaged where its last batch's keys lie, fails before any batch is written.
      let at = Math.floor(made.text.length * 0.9);
      while (made.text[at] === '\n') at++;
      const damaged = `${made.text.slice(0, at)}${made.text[at] === 'A' ? 'B' : 'A'}${made.text.slice(at + 1)}`;
      const empty = newHome();
      for (const [text, phrase] of [
        [made.text, 'not the passphrase'],
        [damaged, 'many passphrase'],
      ] as const) {
        const badHeard: Heard[] = [];
        await onKeystore(empty, email, password, async (keystore) => {
          const failure = await importRoomKeys(keystore, text, phrase, listening(badHeard)).then(
            () => undefined,
            (error: unknown) => (error as { code?: string }).code,
          );
          expect(failure).toMatch(/^LK_KEY_EXPORT_(BAD_PASSPHRASE|INVALID)$/);
          expect(await keystore.count()).toEqual({ persisted: 0, ephemeral: 0 });
        });
        expect(badHeard.filter((h) => h !== 'stretch')).toEqual([]);
      }
    });

    it('shows progress and the stretch on stderr for people, and under --json only the result', async () => {
      const many = makeRoomKeys(2500);
      const source = await device(email, password);
      await onKeystore(source, email, password, (keystore) => keystore.addRoomKeys(many.map((key) => ({ key }))));
      const file = join(dir, 'many.txt');
      const bars = (stderr: string) => stderr.split('\n').filter((line) => line.startsWith('['));

      // stderr is a pipe: a line per tenth reached, batches of 1,000 (tenths 4, 8 and 10).
      const exported = await cli(['keys', 'export', file], source, lines(password, 'many phrase', 'many phrase'));
      expect(exported.code, exported.stderr).toBe(0);
      expect(exported.stdout).toBe(`Exported 2,500 keys to ${file}.\n`);
      const exportBars = bars(exported.stderr);
      expect(exportBars).toHaveLength(3);
      expect(exportBars[0]).toMatch(/^\[#{4}\.{6}\] 1,000\/2,500 keys · [\d,]+ keys\/s · \d+s left$/);
      expect(exportBars[2]).toMatch(/^\[#{10}\] 2,500\/2,500 keys · [\d,]+ keys\/s · done$/);
      // Keys first, then the stretch, on a line of its own.
      expect(exported.stderr.indexOf('\nStretching the passphrase…\n')).toBeGreaterThan(
        exported.stderr.indexOf(exportBars[2] as string),
      );

      const target = await device(email, password);
      const imported = await cli(['keys', 'import', file], target, lines(password, 'many phrase'));
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toBe(`Imported 2,500 keys from ${file}.\n`);
      const importBars = bars(imported.stderr);
      expect(importBars).toHaveLength(3);
      expect(importBars[2]).toMatch(/^\[#{10}\] 2,500\/2,500 keys · [\d,]+ keys\/s · done$/);
      expect(imported.stderr.indexOf('Stretching the passphrase…\n')).toBeGreaterThanOrEqual(0);
      expect(imported.stderr.indexOf('Stretching the passphrase…\n')).toBeLessThan(
        imported.stderr.indexOf(importBars[0] as string),
      );
      expect(await heldKeys(target, email, password)).toEqual(sorted(many));

      // Under --json stderr stays empty (cliJson checks) and stdout is the one JSON document.
      const other = await device(email, password);
      expect(await cliJson(['keys', 'import', file], other, lines(password, 'many phrase'))).toEqual({
        file,
        total: 2500,
        imported: 2500,
      });
      const second = join(dir, 'many-again.txt');
      expect(await cliJson(['keys', 'export', second], other, lines(password, 'again', 'again'))).toEqual({
        file: second,
        exported: 2500,
      });
    });
  });
});
