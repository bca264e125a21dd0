import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackupProgress, exportRoomKeys, importRoomKeys, LocalKeystore } from '@latchkey/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf } from '../support/errors.js';
import { makeRoomKeys } from '../support/room-keys.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

const fingerprint = async (keystore: LocalKeystore) =>
  (await keystore.persistedRoomKeys()).map((s) => `${s.key.room_id}|${s.key.session_id}|${s.key.session_key}`).sort();

describe('backup and restore on a new device, over HTTP', () => {
  let server: TestServer;
  let dir: string;
  const email = 'history@example.com';
  const password = 'history password';
  const keys = makeRoomKeys(10_000);
  let recoveryKey: string;
  let originalFingerprint: string[];

  beforeAll(async () => {
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-devices-'));
    await createVerifiedAccount(server, email, password);
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('device A stores 10,000 keys, enables backup, and uploads them all', async () => {
    const session = await server.client().logIn(email, password, { deviceName: 'device A' });
    const keystore = await session.openKeystore(join(dir, 'device-a.db'));
    expect(await keystore.addRoomKeys(keys.map((key) => ({ key })))).toBe(10_000);
    const backup = session.keyBackup(keystore);
    const enabled = await backup.enable({ passphrase: 'a long backup passphrase' });
    recoveryKey = enabled.recoveryKey;
    expect(recoveryKey).toMatch(/^Es[STU]. /);
    const progress: BackupProgress[] = [];
    const result = await backup.uploadPending((p) => progress.push(p));
    expect(result.uploaded).toBe(10_000);
    expect(progress.at(-1)).toMatchObject({ phase: 'upload', done: 10_000, total: 10_000 });
    expect(await backup.status()).toMatchObject({ enabled: true, count: 10_000, pending: 0, trusted: true });
    // A second pass has nothing to send: incremental.
    expect((await backup.uploadPending()).uploaded).toBe(0);
    originalFingerprint = await fingerprint(keystore);
    await keystore.close();
    await session.logOut();
    rmSync(join(dir, 'device-a.db'), { force: true }); // device A is thrown away
  });

  it('a wrong recovery key fails with LK_BAD_RECOVERY_KEY and imports nothing', async () => {
    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(join(dir, 'device-wrong.db'));
    const backup = session.keyBackup(keystore);
    const wrong = 'EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d'; // valid form, other key
    expect(await codeOf(backup.restore({ recoveryKey: wrong }))).toBe('LK_BAD_RECOVERY_KEY');
    expect(await codeOf(backup.restore({ recoveryKey: `${recoveryKey.slice(0, -1)}x` }))).toBe('LK_BAD_RECOVERY_KEY');
    expect(await codeOf(backup.restore({ passphrase: 'not the passphrase' }))).toBe('LK_BAD_PASSPHRASE');
    expect((await keystore.count()).persisted).toBe(0);
    expect((await backup.current())?.count).toBe(10_000);
    await keystore.close();
  });

  it('device B, with nothing but the recovery key, ends with exactly the same 10,000 keys', async () => {
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
    const file = join(dir, 'device-b.db');
    const contents = readdirSync(dir)
      .filter((f) => f.startsWith('device-b.db'))
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
    await reopened.close();
    await owner.logOut();
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
    await fresh.close();

    // Proving the recovery key renewed the login's way in: another device restores with the password alone.
    const other = await client.logIn(resetEmail, 'password after');
    const otherStore = await other.openKeystore(join(dir, 'reset-other-device.db'));
    expect(await other.keyBackup(otherStore).restore({ trustedDevice: true })).toMatchObject({ imported: 120 });
    expect(await fingerprint(otherStore)).toEqual(held);
    await otherStore.close();
    await other.logOut();
    await after.logOut();
  });

  it('never stores, backs up or exports a key marked ephemeral', async () => {
    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(join(dir, 'device-e.db'));
    const [keep, fleeting] = makeRoomKeys(2);
    await keystore.addRoomKeys([{ key: keep as never }]);
    await keystore.addRoomKeys([{ key: fleeting as never }], { ephemeral: true });
    expect((await keystore.getRoomKey(fleeting?.room_id as string, fleeting?.session_id as string))?.key).toEqual(
      fleeting,
    );
    const backup = session.keyBackup(keystore);
    expect((await backup.uploadPending()).uploaded).toBe(1);
    const exported = await exportRoomKeys(keystore, 'export passphrase', 1000);
    expect(exported.count).toBe(1);
    expect(exported.text).not.toContain(fleeting?.session_key);
    await keystore.close();
    const bytes = readdirSync(dir)
      .filter((f) => f.startsWith('device-e.db'))
      .map((f) => readFileSync(join(dir, f)));
    expect(bytes.some((b) => b.includes(Buffer.from(fleeting?.session_key as string)))).toBe(false);
    // The export file reads back on another device.
    const other = await session.openKeystore(join(dir, 'device-f.db'));
    expect(await importRoomKeys(other, exported.text, 'export passphrase')).toEqual({ total: 1, imported: 1 });
    expect(await codeOf(importRoomKeys(other, exported.text, 'wrong passphrase'))).toBe('LK_KEY_EXPORT_BAD_PASSPHRASE');
    await other.close();
  });
});
