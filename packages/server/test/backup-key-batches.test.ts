import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackedUpKeyBody, BackupUploadBody } from '@latchkey/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../../../test/support/postgres.js';
import type { ServerContext } from '../src/context.js';
import type { AuthenticatedSession } from '../src/modules/accounts/service.js';
import { deleteVersion, keyBatches, uploadKeys } from '../src/modules/backup/service.js';
import { connect } from '../src/store/database.js';
import { openStore } from '../src/store/kysely-store.js';
import type { AccountRow, SessionRow } from '../src/store/schema.js';
import type { Store } from '../src/store/store.js';

/**
 * The reads behind the Matrix API's unpaged downloads (service `keyBatches`) and its idempotent
 * version delete, over the real store on both backends. Over HTTP, with matrix-js-sdk, they are
 * tested in test/interop/matrix-client-backup.test.ts; here the edges a client cannot time: a version
 * deleted between two reads, and a room that straddles reads.
 */

const NOW = 1_750_000_000_000;
const bytes = (label: string) => Uint8Array.from(Buffer.from(label.padEnd(32, '.')).subarray(0, 32));

const databaseUrlFor = {
  sqlite: (dir: string, name: string) => Promise.resolve(`sqlite:${join(dir, `${name}.db`)}`),
  postgres: (_dir: string, name: string) => createTestDatabase(inject('postgresUrl'), `batches_${name}`),
} as const;

describe.each(['sqlite', 'postgres'] as const)('unpaged reads and version deletes on %s', (backend) => {
  let dir: string;
  let store: Store;
  let counter = 0;
  let auth: AuthenticatedSession;
  const ctx = () => ({ store, now: () => NOW }) as unknown as ServerContext;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `latchkey-batches-${backend}-`));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    counter += 1;
    store = await openStore(connect(await databaseUrlFor[backend](dir, `t${counter}`)));
    const owner: AccountRow = {
      id: 'acc-1',
      email: 'one@example.com',
      verified_at: NOW,
      created_at: NOW,
      credential_id: 'cid:acc-1',
      opaque_record: bytes('record'),
      wrap_kb: bytes('wrapKB'),
      ka_sealed: bytes('kA'),
      keys_changed_at: NOW,
      password_changed_at: NOW,
    };
    const session: SessionRow = {
      id: 's1',
      account_id: 'acc-1',
      token_hash: bytes('token'),
      device_name: 'device',
      user_agent: null,
      created_at: NOW,
      last_used_at: NOW,
      authenticated_at: NOW,
      expires_at: NOW + 3_600_000,
    };
    await store.insertAccount(owner);
    await store.insertSession(session);
    auth = { account: owner, session };
    await store.createBackupVersion({
      account_id: 'acc-1',
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: JSON.stringify({ public_key: 'key' }),
      created_at: NOW,
    });
  });
  afterEach(async () => store.close());

  /** `perRoom` keys in each of `rooms` rooms, each key's ciphertext naming it. */
  const body = (rooms: number, perRoom: number): BackupUploadBody => ({
    rooms: Object.fromEntries(
      Array.from({ length: rooms }, (_, r) => [
        `!r${r}`,
        {
          sessions: Object.fromEntries(
            Array.from({ length: perRoom }, (_, s) => [
              `s${String(s).padStart(2, '0')}`,
              {
                first_message_index: 0,
                forwarded_count: 0,
                is_verified: false,
                session_data: { ephemeral: 'e', ciphertext: `!r${r}/s${s}`, mac: 'm' },
              },
            ]),
          ),
        },
      ]),
    ),
  });
  const drain = async (batches: AsyncGenerator<BackedUpKeyBody[]>) => {
    const sizes: number[] = [];
    const ids: string[] = [];
    for await (const batch of batches) {
      sizes.push(batch.length);
      ids.push(...batch.map((key) => `${key.room_id}/${key.session_id}`));
    }
    return { sizes, ids };
  };

  it('reads every key in order, a batch at a time, and one room whole although it straddles two reads', async () => {
    await uploadKeys(ctx(), auth, '1', body(5, 7)); // 35 keys; reads of 10 split rooms !r1 and !r2
    const all = await drain(await keyBatches(ctx(), auth, '1', { batch: 10 }));
    expect(all.sizes).toEqual([10, 10, 10, 5]);
    expect(all.ids).toHaveLength(35);
    expect([...all.ids].sort()).toEqual(all.ids);
    const room = await drain(await keyBatches(ctx(), auth, '1', { roomId: '!r1', batch: 4 }));
    expect(room.sizes).toEqual([4, 3]);
    expect(room.ids).toEqual(Array.from({ length: 7 }, (_, s) => `!r1/s${String(s).padStart(2, '0')}`));
    expect((await drain(await keyBatches(ctx(), auth, '1', { roomId: '!none', batch: 4 }))).ids).toEqual([]);
    // A read that ends exactly on the last key asks once more and gets nothing: still whole.
    expect((await drain(await keyBatches(ctx(), auth, '1', { roomId: '!r4', batch: 7 }))).sizes).toEqual([7]);
  });

  it('fails before the first read for a missing version, and between reads once the version is deleted', async () => {
    await expect(keyBatches(ctx(), auth, '2', { batch: 10 })).rejects.toMatchObject({ code: 'LK_BACKUP_NOT_FOUND' });
    await uploadKeys(ctx(), auth, '1', body(3, 10));
    const batches = await keyBatches(ctx(), auth, '1', { batch: 10 });
    expect((await batches.next()).value).toHaveLength(10);
    await deleteVersion(ctx(), auth, '1');
    // Not a short backup passed off as whole: the reading ends in an error the route turns into a cut connection.
    await expect(batches.next()).rejects.toMatchObject({ code: 'LK_BACKUP_NOT_FOUND' });
  });

  it('deletes a version again without error only when asked (Matrix), and never one that did not exist', async () => {
    await deleteVersion(ctx(), auth, '1');
    await expect(deleteVersion(ctx(), auth, '1')).rejects.toMatchObject({ code: 'LK_BACKUP_NOT_FOUND' });
    await deleteVersion(ctx(), auth, '1', { deletedIsDone: true });
    await expect(deleteVersion(ctx(), auth, '2', { deletedIsDone: true })).rejects.toMatchObject({
      code: 'LK_BACKUP_NOT_FOUND',
    });
    expect(await store.backupVersionExisted('acc-1', 1)).toBe(true);
    expect(await store.backupVersionExisted('acc-1', 2)).toBe(false);
    expect(await store.backupVersionExisted('acc-2', 1)).toBe(false);
  });
});
