import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Session, Transport } from '@latchkey/client';
import { encodeRecoveryKey, type StorageKeyListBody } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliError, cliJson, lines } from '../support/cli-process.js';
import { codeOf } from '../support/errors.js';
import { makeRoomKeys } from '../support/room-keys.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * `verifyRecoveryKey` against a server (or anyone holding the session) that stores the recovery key's
 * description without its key check (`iv`, `mac`), over HTTP on a real server (issue 8). The spec
 * lets such a description accept every key, so the check must answer "cannot check", never "valid"
 * (nor "invalid" for the right key); a restore still tells right from wrong on the secret's own MAC.
 */
describe('a recovery key checked against a description stripped of its key check', () => {
  let server: TestServer;
  let dir: string;
  const email = 'stripped@example.com';
  const password = 'stripped password';
  const stranger = encodeRecoveryKey(new Uint8Array(32).fill(9));
  let recoveryKey: string;

  const call = (session: Session) => {
    const transport = new Transport(server.url);
    return <T>(method: string, path: string, body?: unknown) =>
      transport.request<T>(method, path, { token: session.state.token, ...(body === undefined ? {} : { body }) });
  };

  beforeAll(async () => {
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-recovery-check-'));
    await createVerifiedAccount(server, email, password);
    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(join(dir, 'device.db'));
    await keystore.addRoomKeys(makeRoomKeys(5).map((key) => ({ key })));
    const backup = session.keyBackup(keystore);
    ({ recoveryKey } = await backup.enable());
    await backup.uploadPending();
    await keystore.close();
    await session.logOut();
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('with the key check in place: the right key is valid, another is invalid', async () => {
    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(join(dir, 'before.db'));
    const backup = session.keyBackup(keystore);
    expect(await backup.verifyRecoveryKey(recoveryKey)).toBe('valid');
    expect(await backup.verifyRecoveryKey(stranger)).toBe('invalid');
    await keystore.close();
    await session.logOut();
  });

  it('stripped: any key is "cannot-check", never valid; a restore still refuses the wrong key and takes the right one', async () => {
    const hostile = await server.client().logIn(email, password);
    const api = call(hostile);
    const list = await api<StorageKeyListBody>('GET', '/v1/secret-storage/keys');
    const { iv, mac, ...stripped } = list.keys.recovery ?? { algorithm: 'missing' };
    expect(typeof iv).toBe('string');
    expect(typeof mac).toBe('string');
    await api('PUT', '/v1/secret-storage/keys/recovery', stripped);
    const after = await api<StorageKeyListBody>('GET', '/v1/secret-storage/keys');
    expect(after.keys.recovery).toEqual(stripped);
    await hostile.logOut();

    const session = await server.client().logIn(email, password);
    const keystore = await session.openKeystore(join(dir, 'after.db'));
    const backup = session.keyBackup(keystore);
    expect(await backup.verifyRecoveryKey(stranger)).toBe('cannot-check');
    expect(await backup.verifyRecoveryKey(recoveryKey)).toBe('cannot-check');
    // The secret's MAC still tells them apart: the stranger's key imports nothing, the right one all.
    expect(await codeOf(backup.restore({ recoveryKey: stranger }))).toBe('LK_BAD_RECOVERY_KEY');
    expect(await keystore.count()).toEqual({ persisted: 0, ephemeral: 0 });
    expect(await backup.restore({ recoveryKey })).toMatchObject({ total: 5, imported: 5, failed: 0 });
    await keystore.close();
    await session.logOut();

    // The CLI says so, and never that the key is valid.
    const home = join(dir, 'cli-home');
    await cliJson(['account', 'login', email, '--server', server.url], home, lines(password));
    for (const key of [stranger, recoveryKey]) {
      expect(await cliError(['recovery', 'verify', key], home, lines(password))).toMatchObject({
        code: 'LK_RECOVERY_KEY_UNCHECKABLE',
      });
    }
    const human = await cli(['recovery', 'verify', recoveryKey], home, lines(password));
    expect(human.code).toBe(1);
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/^error LK_RECOVERY_KEY_UNCHECKABLE: Cannot check/m);
  });
});
