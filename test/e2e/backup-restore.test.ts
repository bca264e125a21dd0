import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackupProgress, exportRoomKeys, importRoomKeys, LocalKeystore } from '@latchkey/client';
import { fromBase64, toBase64 } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { codeOf } from '../support/errors.js';
import { makeRoomKey, makeRoomKeys } from '../support/room-keys.js';
import { createVerifiedAccount, requestAsBearer, startTestServer, type TestServer } from '../support/server.js';

const fingerprint = async (keystore: LocalKeystore) =>
  (await keystore.persistedRoomKeys()).map((s) => `${s.key.room_id}|${s.key.session_id}|${s.key.session_key}`).sort();

describe('backup and restore on a new device, over HTTP', () => {
  let server: TestServer;
  let dir: string;
  const email = 'history@example.com';
  const password = 'history password';
  const keys = makeRoomKeys(10_000);

  /**
   * The account's backup as device A left it: 10,000 keys stored, backup enabled (with a passphrase),
   * all uploaded, then device A thrown away. Made once, by whichever test first needs it, so each test
   * runs alone as well as in the file; what happened on the way is kept for the first test to check.
   */
  let history: ReturnType<typeof backUpHistory> | undefined;
  const historyBackup = () => {
    history ??= backUpHistory();
    return history;
  };
  async function backUpHistory() {
    await createVerifiedAccount(server, email, password);
    const session = await server.client().logIn(email, password, { deviceName: 'device A' });
    const keystore = await session.openKeystore(join(dir, 'device-a.db'));
    const stored = await keystore.addRoomKeys(keys.map((key) => ({ key })));
    const backup = session.keyBackup(keystore);
    const { recoveryKey } = await backup.enable({ passphrase: 'a long backup passphrase' });
    const progress: BackupProgress[] = [];
    const result = await backup.uploadPending((p) => progress.push(p));
    const status = await backup.status();
    const secondPass = await backup.uploadPending();
    const originalFingerprint = await fingerprint(keystore);
    await keystore.close();
    await session.logOut();
    rmSync(join(dir, 'device-a.db'), { force: true }); // device A is thrown away
    return { stored, recoveryKey, progress, result, status, secondPass, originalFingerprint };
  }

  beforeAll(async () => {
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-devices-'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('device A stores 10,000 keys, enables backup, and uploads them all', async () => {
    const { stored, recoveryKey, progress, result, status, secondPass, originalFingerprint } = await historyBackup();
    expect(stored).toBe(10_000);
    expect(recoveryKey).toMatch(/^Es[STU]. /);
    expect(result.uploaded).toBe(10_000);
    expect(progress.at(-1)).toMatchObject({ phase: 'upload', done: 10_000, total: 10_000 });
    expect(status).toMatchObject({ enabled: true, count: 10_000, pending: 0, trusted: true });
    // A second pass has nothing to send: incremental.
    expect(secondPass.uploaded).toBe(0);
    expect(originalFingerprint).toEqual(keys.map((k) => `${k.room_id}|${k.session_id}|${k.session_key}`).sort());
  });

  it('a wrong recovery key fails with LK_BAD_RECOVERY_KEY and imports nothing', async () => {
    const { recoveryKey } = await historyBackup();
    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(join(dir, 'device-wrong.db'));
    const backup = session.keyBackup(keystore);
    const wrong = 'EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d'; // valid form, other key
    expect(await codeOf(backup.restore({ recoveryKey: wrong }))).toBe('LK_BAD_RECOVERY_KEY');
    // One character mistyped (never the same character again, which would be the right key).
    const typo = `${recoveryKey.slice(0, -1)}${recoveryKey.endsWith('x') ? 'y' : 'x'}`;
    expect(await codeOf(backup.restore({ recoveryKey: typo }))).toBe('LK_BAD_RECOVERY_KEY');
    expect(await codeOf(backup.restore({ passphrase: 'not the passphrase' }))).toBe('LK_BAD_PASSPHRASE');
    expect((await keystore.count()).persisted).toBe(0);
    expect((await backup.current())?.count).toBe(10_000);
    await keystore.close();
  });

  it('device B, with nothing but the recovery key, ends with exactly the same 10,000 keys', async () => {
    const { recoveryKey, originalFingerprint } = await historyBackup();
    const session = await server.client().logIn(email, password, { deviceName: 'device B' });
    const keystore = await session.openKeystore(join(dir, 'device-b.db'));
    const progress: BackupProgress[] = [];
    const result = await session.keyBackup(keystore).restore({ recoveryKey }, (p) => progress.push(p));
    expect(result).toMatchObject({ total: 10_000, imported: 10_000, failed: 0 });
    expect(progress.at(-1)).toMatchObject({ phase: 'import', done: 10_000, total: 10_000 });
    expect(await fingerprint(keystore)).toEqual(originalFingerprint);
    await keystore.close();
  });

  it('device C restores the same keys with the passphrase, and device D through the password login', async () => {
    const { originalFingerprint } = await historyBackup();
    for (const [name, secret] of [
      ['c', { passphrase: 'a long backup passphrase' }],
      ['d', { trustedDevice: true as const }],
    ] as const) {
      const session = await server.client().logIn(email, password);
      const keystore = await session.openKeystore(join(dir, `device-${name}.db`));
      expect((await session.keyBackup(keystore).restore(secret)).imported).toBe(10_000);
      expect(await fingerprint(keystore)).toEqual(originalFingerprint);
      await keystore.close();
    }
  });

  it('a logged-out device keeps nothing readable: no key bytes in its file, and it does not open without kB', async () => {
    const { recoveryKey, originalFingerprint } = await historyBackup();
    // A device that restored the backup, then logged out.
    const file = join(dir, 'device-logged-out.db');
    const device = await server.client().logIn(email, password);
    expect((await device.keyBackup(await device.openKeystore(file)).restore({ recoveryKey })).imported).toBe(10_000);
    await device.logOut();
    const contents = readdirSync(dir)
      .filter((f) => f.startsWith('device-logged-out.db'))
      .map((f) => readFileSync(join(dir, f)));
    for (const key of keys.slice(0, 50)) {
      for (const needle of [key.session_key, key.room_id, key.session_id]) {
        expect(contents.some((bytes) => bytes.includes(Buffer.from(needle)))).toBe(false);
      }
    }
    // Another account's kB (a different login) does not open it, and the file stays as it was.
    const other = await createVerifiedAccount(server, 'thief@example.com', 'thief password');
    const thief = await other.client.logIn('thief@example.com', 'thief password');
    await expect(thief.openKeystore(file)).rejects.toMatchObject({ code: 'LK_KEYSTORE_KEY_CHANGED' });
    const owner = await server.client().logIn(email, password);
    const reopened = await owner.openKeystore(file);
    expect(await fingerprint(reopened)).toEqual(originalFingerprint);
    // Left open, it is closed by the logout: its keys are wiped with kB's.
    await owner.logOut();
    const [first] = keys;
    expect(await codeOf(reopened.getRoomKey(first?.room_id as string, first?.session_id as string))).toBe(
      'LK_KEYSTORE_CLOSED',
    );
    expect(await codeOf(reopened.persistedRoomKeys())).toBe('LK_KEYSTORE_CLOSED');
    await reopened.close(); // and closing it again is harmless
  });

  it('after a password reset the old keystore is refused; erased, it is refilled from the backup', async () => {
    const resetEmail = 'reset-device@example.com';
    const { client } = await createVerifiedAccount(server, resetEmail, 'password before reset');
    const file = join(dir, 'reset-device.db');
    const resetKeys = makeRoomKeys(120);
    const before = await client.logIn(resetEmail, 'password before reset');
    const keystore = await before.openKeystore(file);
    await keystore.addRoomKeys(resetKeys.map((key) => ({ key })));
    const backup = before.keyBackup(keystore);
    const { recoveryKey: resetRecoveryKey } = await backup.enable();
    expect((await backup.uploadPending()).uploaded).toBe(120);
    const held = await fingerprint(keystore);
    await keystore.close();

    const sent = server.smtp.messages.length;
    await client.requestReset(resetEmail);
    await client.completeReset(resetEmail, await server.smtp.codeFor(resetEmail, { after: sent }), 'password after');
    const after = await client.logIn(resetEmail, 'password after');
    // kB is new: the store's key check says so, instead of failing on each record later.
    await expect(after.openKeystore(file)).rejects.toMatchObject({
      code: 'LK_KEYSTORE_KEY_CHANGED',
      details: { location: file },
    });
    await LocalKeystore.erase(file);
    expect(readdirSync(dir).filter((name) => name.startsWith('reset-device.db'))).toEqual([]);
    await LocalKeystore.erase(file); // erasing what is gone is not an error

    const fresh = await after.openKeystore(file);
    expect(await fresh.count()).toEqual({ persisted: 0, ephemeral: 0 });
    // The backup was signed with a key that came from the old kB: this device does not trust it yet.
    expect(await after.keyBackup(fresh).status()).toMatchObject({ enabled: true, trusted: false });
    expect(await codeOf(after.keyBackup(fresh).uploadPending())).toBe('LK_BACKUP_UNTRUSTED');
    // The login's way into the backup died with the old kB, and says so; the recovery key still opens it.
    await expect(after.keyBackup(fresh).restore({ trustedDevice: true })).rejects.toMatchObject({
      code: 'LK_NO_RECOVERY_METHOD',
      details: { reason: 'kb-changed' },
    });
    expect(await fresh.count()).toEqual({ persisted: 0, ephemeral: 0 });
    expect(await after.keyBackup(fresh).restore({ recoveryKey: resetRecoveryKey })).toMatchObject({
      total: 120,
      imported: 120,
      failed: 0,
    });
    expect(await fingerprint(fresh)).toEqual(held);
    // Proving the recovery key signed the backup again under the new kB: uploads go on.
    expect(await after.keyBackup(fresh).status()).toMatchObject({ trusted: true, count: 120, pending: 0 });
    await fresh.addRoomKeys(
      makeRoomKeys(121)
        .slice(120)
        .map((key) => ({ key })),
    );
    expect((await after.keyBackup(fresh).uploadPending()).uploaded).toBe(1);
    expect((await after.keyBackup(fresh).current())?.count).toBe(121);
    held.push(...(await fingerprint(fresh)).filter((entry) => !held.includes(entry)));
    held.sort();
    await fresh.close();

    // Proving the recovery key renewed the login's way in: another device restores with the password alone.
    const other = await client.logIn(resetEmail, 'password after');
    const otherStore = await other.openKeystore(join(dir, 'reset-other-device.db'));
    expect(await other.keyBackup(otherStore).restore({ trustedDevice: true })).toMatchObject({ imported: 121 });
    expect(await fingerprint(otherStore)).toEqual(held);
    await otherStore.close();
    await other.logOut();
    await after.logOut();
  });

  it('never stores, backs up or exports a key marked ephemeral', async () => {
    const ephemeralEmail = 'ephemeral@example.com';
    await createVerifiedAccount(server, ephemeralEmail, password);
    const session = await server.client().logIn(ephemeralEmail, password);
    const keystore = await session.openKeystore(join(dir, 'device-e.db'));
    const [keep, fleeting] = makeRoomKeys(2);
    await keystore.addRoomKeys([{ key: keep as never }]);
    await keystore.addRoomKeys([{ key: fleeting as never }], { ephemeral: true });
    expect((await keystore.getRoomKey(fleeting?.room_id as string, fleeting?.session_id as string))?.key).toEqual(
      fleeting,
    );
    // Adding it again unmarked while the mark holds does not store it either.
    await keystore.addRoomKeys([{ key: fleeting as never }]);
    expect(await keystore.count()).toEqual({ persisted: 1, ephemeral: 1 });
    const backup = session.keyBackup(keystore);
    await backup.enable();
    expect((await backup.uploadPending()).uploaded).toBe(1);
    expect((await backup.current())?.count).toBe(1);
    const exported = await exportRoomKeys(keystore, 'export passphrase', 1000);
    expect(exported.count).toBe(1);
    await keystore.close();

    // Reopened, the store holds the kept key alone: the ephemeral one was never written.
    const reopened = await session.openKeystore(join(dir, 'device-e.db'));
    expect(await reopened.count()).toEqual({ persisted: 1, ephemeral: 0 });
    expect(await reopened.getRoomKey(fleeting?.room_id as string, fleeting?.session_id as string)).toBeUndefined();
    expect((await reopened.persistedRoomKeys()).map((stored) => stored.key)).toEqual([keep]);
    // A key stored first and marked later: its copy on disk goes, and it is neither uploaded nor exported.
    const [later] = makeRoomKeys(1);
    await reopened.addRoomKeys([{ key: later as never }]);
    expect(await reopened.count()).toEqual({ persisted: 2, ephemeral: 0 });
    await reopened.addRoomKeys([{ key: later as never }], { ephemeral: true });
    expect(await reopened.count()).toEqual({ persisted: 1, ephemeral: 1 });
    expect((await session.keyBackup(reopened).uploadPending()).uploaded).toBe(0);
    expect((await exportRoomKeys(reopened, 'export passphrase', 1000)).count).toBe(1);
    // Marked with a worse copy (known from a later message index), the better one stored is what is held.
    const best = makeRoomKey(9, 9, 0);
    const worse = { ...best, session_key: toBase64(withFirstIndex(fromBase64(best.session_key), 10)) };
    await reopened.addRoomKeys([{ key: best }]);
    await reopened.addRoomKeys([{ key: worse }], { ephemeral: true });
    expect((await reopened.getRoomKey(best.room_id, best.session_id))?.key).toEqual(best);
    expect(await reopened.count()).toEqual({ persisted: 1, ephemeral: 2 });
    await reopened.close();

    // The export file holds the kept key alone: it reads back, exactly, on another device.
    const other = await session.openKeystore(join(dir, 'device-f.db'));
    expect(await importRoomKeys(other, exported.text, 'export passphrase')).toEqual({ total: 1, imported: 1 });
    expect((await other.persistedRoomKeys()).map((stored) => stored.key)).toEqual([keep]);
    expect(await codeOf(importRoomKeys(other, exported.text, 'wrong passphrase'))).toBe('LK_KEY_EXPORT_BAD_PASSPHRASE');
    await other.close();
  });
});

describe("the backup's trust, replacement and background upload, over HTTP", () => {
  let server: TestServer;
  let dir: string;
  const password = 'lifecycle password';

  beforeAll(async () => {
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-lifecycle-'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function device(email: string, name: string) {
    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(join(dir, `${name}.db`));
    return { session, keystore, backup: session.keyBackup(keystore) };
  }

  /** A request as the account's owner, straight to the server: what a dishonest server could serve. */
  const asOwner = (token: string, method: string, path: string, body?: unknown) =>
    requestAsBearer(server, token, method, path, body);

  it('refuses to upload to, or restore from, a backup whose public key was swapped', async () => {
    const email = 'swapped@example.com';
    await createVerifiedAccount(server, email, password);
    const a = await device(email, 'swap-a');
    await a.keystore.addRoomKeys(makeRoomKeys(5).map((key) => ({ key })));
    const { recoveryKey, version } = await a.backup.enable();
    expect((await a.backup.uploadPending()).uploaded).toBe(5);
    await a.keystore.addRoomKeys(makeRoomKeys(1).map((key) => ({ key })));

    // The server (or anyone with the token) puts its own key in auth_data, unsigned, then signed wrongly.
    const attacker = toBase64(globalThis.crypto.getRandomValues(new Uint8Array(32)));
    for (const authData of [
      { public_key: attacker },
      { public_key: attacker, signatures: { [a.session.accountId]: { 'ed25519:latchkey-backup': 'A'.repeat(86) } } },
    ]) {
      const swapped = await asOwner(a.session.state.token, 'PUT', `/v1/backup/version/${version}`, {
        algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
        auth_data: authData,
      });
      expect(swapped.status).toBe(200);
      expect(await a.backup.status()).toMatchObject({ trusted: false, pending: 1 });
      expect(await codeOf(a.backup.uploadPending())).toBe('LK_BACKUP_UNTRUSTED');
      // Its private key is not the one in secret storage: no restore, and no signature for it.
      expect(await codeOf(a.backup.restore({ recoveryKey }))).toBe('LK_BACKUP_KEY_MISMATCH');
      expect(await codeOf(a.backup.restore({ trustedDevice: true }))).toBe('LK_BACKUP_KEY_MISMATCH');
      expect((await a.backup.current())?.auth_data).toEqual(authData);
    }
    expect((await a.backup.current())?.count).toBe(5);
    await a.keystore.close();
  });

  it('refuses a second backup without replace; replacing carries the old keys over, then deletes it', async () => {
    const email = 'replace@example.com';
    await createVerifiedAccount(server, email, password);
    const a = await device(email, 'replace-a');
    const oldKeys = makeRoomKeys(30);
    await a.keystore.addRoomKeys(oldKeys.map((key) => ({ key })));
    const first = await a.backup.enable();
    await a.backup.uploadPending();
    await a.keystore.close();

    // Another device holds none of those keys, and starts a new backup.
    const b = await device(email, 'replace-b');
    expect(await b.backup.enable().catch((e: unknown) => e)).toMatchObject({
      code: 'LK_BACKUP_EXISTS',
      details: { version: first.version },
    });
    const progress: BackupProgress[] = [];
    const second = await b.backup.enable({ replace: true, onProgress: (p) => progress.push(p) });
    expect(second.replaced).toEqual({ version: first.version, carriedOver: 30, unreadable: 0, total: 30 });
    expect(progress.at(-1)).toMatchObject({ done: 30, total: 30 });
    expect(Number(second.version)).toBeGreaterThan(Number(first.version));
    const gone = await asOwner(b.session.state.token, 'GET', `/v1/backup/version/${first.version}`);
    expect([gone.status, gone.body.code]).toEqual([404, 'LK_BACKUP_NOT_FOUND']);
    expect(await b.backup.status()).toMatchObject({ version: second.version, count: 0, pending: 30, trusted: true });
    expect((await b.backup.uploadPending()).uploaded).toBe(30);
    await b.keystore.close();

    // The new recovery key restores every old key; the old one opens nothing now.
    const c = await device(email, 'replace-c');
    expect(await codeOf(c.backup.restore({ recoveryKey: first.recoveryKey }))).toBe('LK_BAD_RECOVERY_KEY');
    expect(await c.backup.restore({ recoveryKey: second.recoveryKey })).toMatchObject({ imported: 30, failed: 0 });
    const expected = oldKeys.map((k) => `${k.room_id}|${k.session_id}|${k.session_key}`).sort();
    expect(await fingerprint(c.keystore)).toEqual(expected);
    await c.keystore.close();
  });

  it('uploads in the background, one run at a time, and nothing after stop', async () => {
    const email = 'background@example.com';
    await createVerifiedAccount(server, email, password);
    const a = await device(email, 'background-a');
    const { version } = await a.backup.enable();
    // The loop runs on a fake clock (setTimeout only; HTTP runs as ever): each turn is a step of the
    // test, not a sleep, and a loop that stops re-arming fails at once.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const INTERVAL = 1_000;
      /** Lets every pending promise reaction run (setImmediate is not faked). */
      const settle = () => new Promise((resolve) => setImmediate(resolve));
      const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);

      // Real uploads, each run watched: keys added between runs go up at the next turn.
      const uploads: Array<Promise<{ uploaded: number; version: string }>> = [];
      const upload = a.backup.uploadPending.bind(a.backup);
      a.backup.uploadPending = (onProgress) => {
        const result = upload(onProgress);
        uploads.push(result);
        return result;
      };
      const errors: unknown[] = [];
      a.backup.start(INTERVAL, (error) => errors.push(error));
      await settle();
      expect(uploads).toHaveLength(1);
      expect(await uploads[0]).toEqual({ uploaded: 0, version });
      for (const [turn, added] of [
        [1, 40],
        [2, 7],
      ] as const) {
        await a.keystore.addRoomKeys(makeRoomKeys(added).map((key) => ({ key })));
        await advance(INTERVAL);
        expect(uploads).toHaveLength(turn + 1);
        expect(await uploads[turn]).toEqual({ uploaded: added, version });
      }
      expect((await a.backup.current())?.count).toBe(47);
      await a.backup.stop();
      expect(errors).toEqual([]);

      // From here the uploader is a stub whose runs end when the test says.
      /** Every run the loop started, in order; each ends when the test calls its finish(). */
      const runs: Array<{ finish(failure?: Error): void }> = [];
      let running = 0;
      let most = 0;
      const slow = a.backup;
      slow.uploadPending = () =>
        new Promise((resolve, reject) => {
          running++;
          most = Math.max(most, running);
          runs.push({
            finish(failure) {
              running--;
              if (failure === undefined) resolve({ uploaded: 0, version: '0' });
              else reject(failure);
            },
          });
        });
      const run = (n: number) => {
        const started = runs[n];
        if (started === undefined) throw new Error(`run ${n} never started`);
        return started;
      };
      // One run at once; however long it takes, none starts beside it; the next comes an interval after
      // it ends, and the loop keeps re-arming.
      slow.start(INTERVAL);
      await settle();
      expect(runs).toHaveLength(1);
      await advance(20 * INTERVAL);
      expect(runs).toHaveLength(1);
      run(0).finish();
      await settle();
      await advance(INTERVAL - 1);
      expect(runs).toHaveLength(1);
      await advance(1);
      expect(runs).toHaveLength(2);
      for (const n of [1, 2]) {
        run(n).finish();
        await advance(INTERVAL);
        expect(runs).toHaveLength(n + 2);
      }
      // stop() mid-run resolves once that run has ended, and nothing of the loop runs after.
      let stopped = false;
      const stopping = slow.stop().then(() => {
        stopped = true;
      });
      await settle();
      expect(stopped).toBe(false);
      run(3).finish();
      await stopping;
      await advance(20 * INTERVAL);
      expect(runs).toHaveLength(4);
      expect([most, running]).toEqual([1, 0]);

      // Stopped and started again at once, mid-run: the new loop waits for the old run, then goes on.
      // Failed runs are reported and retried; an onError that throws does not end the loop (nor
      // surface as an unhandled rejection, which would fail this file).
      let reported = 0;
      const listener = () => {
        reported++;
        throw new Error('the listener fails too');
      };
      slow.start(INTERVAL, listener);
      await settle();
      expect(runs).toHaveLength(5);
      const stoppingAgain = slow.stop();
      slow.start(INTERVAL, listener);
      await advance(20 * INTERVAL);
      expect(runs).toHaveLength(5);
      run(4).finish(new Error('upload failed'));
      await stoppingAgain;
      await settle();
      expect(runs).toHaveLength(6);
      expect(reported).toBe(1);
      for (const n of [5, 6]) {
        run(n).finish(new Error('upload failed'));
        await advance(INTERVAL);
        expect(runs).toHaveLength(n + 2);
        expect(reported).toBe(n - 3);
      }
      expect([most, running]).toEqual([1, 1]);

      // Logging out stops the loop: it waits for the run in flight, and no run starts after it.
      const loggingOut = a.session.logOut();
      await settle();
      run(7).finish();
      await loggingOut;
      await advance(20 * INTERVAL);
      expect(runs).toHaveLength(8);
      expect([most, running]).toEqual([1, 0]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('replaces a backup the login cannot open only with its recovery key, or when told to discard it', async () => {
    const email = 'unopenable@example.com';
    await createVerifiedAccount(server, email, password);
    const a = await device(email, 'unopenable-a');
    const oldKeys = makeRoomKeys(12);
    await a.keystore.addRoomKeys(oldKeys.map((key) => ({ key })));
    const first = await a.backup.enable({ trustLoggedInDevices: false });
    await a.backup.uploadPending();
    await a.keystore.close();

    const b = await device(email, 'unopenable-b');
    const refused = await b.backup.enable({ replace: true }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: 'LK_NO_RECOVERY_METHOD',
      details: { version: first.version, keys: 12, reason: 'no-way-in' },
    });
    // Nothing changed: the old backup is current and its recovery key still opens it.
    expect(await b.backup.status()).toMatchObject({ version: first.version, count: 12, trusted: true });
    const otherKey = 'EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d'; // well formed, another key
    expect(
      await b.backup.enable({ replace: true, carryOverWith: { recoveryKey: otherKey } }).catch((e: unknown) => e),
    ).toMatchObject({ code: 'LK_BAD_RECOVERY_KEY', details: { reason: 'mismatch' } });

    const kept = await b.backup.enable({ replace: true, carryOverWith: { recoveryKey: first.recoveryKey } });
    expect(kept.replaced).toEqual({ version: first.version, carriedOver: 12, unreadable: 0, total: 12 });
    expect(await fingerprint(b.keystore)).toEqual(
      oldKeys.map((k) => `${k.room_id}|${k.session_id}|${k.session_key}`).sort(),
    );

    await b.keystore.close();

    // Told to discard: a backup the login cannot open is replaced, its keys counted as lost.
    const other = 'discarded@example.com';
    await createVerifiedAccount(server, other, password);
    const c = await device(other, 'discard-c');
    await c.keystore.addRoomKeys(makeRoomKeys(5).map((key) => ({ key })));
    const lost = await c.backup.enable({ trustLoggedInDevices: false });
    await c.backup.uploadPending();
    await c.keystore.close();
    const d = await device(other, 'discard-d');
    const discarded = await d.backup.enable({ replace: true, discardUnreadable: true });
    expect(discarded.replaced).toEqual({ version: lost.version, carriedOver: 0, unreadable: 5, total: 5 });
    expect(await d.backup.status()).toMatchObject({ version: discarded.version, count: 0, pending: 0 });

    // Secret storage holding another key than the current version's (as a replacement interrupted
    // after storing its new key leaves it): nothing opens that version, so replacing goes on.
    await d.keystore.addRoomKeys(makeRoomKeys(3).map((key) => ({ key })));
    await d.backup.uploadPending();
    const stranger = toBase64(globalThis.crypto.getRandomValues(new Uint8Array(32)));
    const swapped = await asOwner(d.session.state.token, 'PUT', `/v1/backup/version/${discarded.version}`, {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: { public_key: stranger },
    });
    expect(swapped.status).toBe(200);
    const again = await d.backup.enable({ replace: true });
    expect(again.replaced).toEqual({ version: discarded.version, carriedOver: 0, unreadable: 3, total: 3 });
    expect(await d.backup.status()).toMatchObject({ version: again.version, trusted: true, pending: 3 });
    await d.keystore.close();
  });
});

/** A Megolm session export's bytes with another first known message index (bytes 1–4, big-endian). */
function withFirstIndex(sessionKey: Uint8Array, index: number): Uint8Array {
  const copy = sessionKey.slice();
  new DataView(copy.buffer).setUint32(1, index);
  return copy;
}
