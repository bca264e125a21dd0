import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKeystore, randomBytes } from '@latchkey/client';
import type { KB } from '@latchkey/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeRoomKeys } from '../../../test/support/room-keys.js';

/**
 * What a stolen device's disk shows of keys it was told not to keep (issue 8): the keystore file and
 * its -wal file are searched byte for byte for the sealed records of keys marked "do not store" after
 * the mark, and the files are owner-only whatever the umask. Each search first proves it can find the
 * records while they are meant to be there, so a miss afterwards means they are gone, not unfindable.
 */

let dir: string;
let file: string;
let kB: KB;
let savedUmask: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'latchkey-keystore-remnants-'));
  file = join(dir, 'device.db');
  kB = randomBytes(32) as KB;
  // A common umask that leaves new files readable by others: the keystore must not rely on it.
  savedUmask = process.umask(0o022);
});
afterEach(() => {
  process.umask(savedUmask);
  rmSync(dir, { recursive: true, force: true });
});

/** The sealed records on disk now, read through a second connection (it sees committed WAL frames). */
function sealedRecords(): Buffer[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare<[], { value: Buffer }>("SELECT value FROM records WHERE kind = 'room-key'")
      .all()
      .map((row) => row.value);
  } finally {
    db.close();
  }
}

/** The raw bytes of the keystore file and of its WAL, where a deleted record's bytes would linger. */
function rawFiles(): Buffer {
  const parts = [file, `${file}-wal`].filter((path) => existsSync(path)).map((path) => readFileSync(path));
  return Buffer.concat(parts);
}

/** How many of `records` appear anywhere in the raw files (a 48-byte stretch of each: nonce and ciphertext). */
function foundOnDisk(records: Buffer[]): number {
  const raw = rawFiles();
  return records.filter((record) => raw.includes(record.subarray(0, 48))).length;
}

describe('the keystore leaves nothing of a "do not store" key on disk', () => {
  it('marked ephemeral after being stored: its sealed records are in neither the file nor the WAL', async () => {
    const keystore = await LocalKeystore.open(file, kB);
    const keys = makeRoomKeys(40, 10);
    expect(await keystore.addRoomKeys(keys.map((key) => ({ key })))).toBe(40);
    const sealed = sealedRecords();
    expect(sealed).toHaveLength(40);
    // The search can find them while they are meant to be there.
    expect(foundOnDisk(sealed)).toBe(40);

    await keystore.addRoomKeys(
      keys.map((key) => ({ key })),
      { ephemeral: true },
    );
    expect(await keystore.count()).toEqual({ persisted: 0, ephemeral: 40 });
    // While the store is still open (the device taken as it runs), and after it is closed.
    expect(foundOnDisk(sealed)).toBe(0);
    await keystore.close();
    expect(foundOnDisk(sealed)).toBe(0);
  });

  it('only the marked keys go: the others stay readable, and reopen', async () => {
    const keystore = await LocalKeystore.open(file, kB);
    const keys = makeRoomKeys(20, 10);
    await keystore.addRoomKeys(keys.map((key) => ({ key })));
    const sealed = sealedRecords();
    const marked = keys.slice(0, 10);
    await keystore.addRoomKeys(
      marked.map((key) => ({ key })),
      { ephemeral: true },
    );
    const kept = sealedRecords();
    expect(kept).toHaveLength(10);
    const gone = sealed.filter((record) => !kept.some((k) => k.equals(record)));
    expect(gone).toHaveLength(10);
    expect(foundOnDisk(gone)).toBe(0);
    expect(foundOnDisk(kept)).toBe(10);
    await keystore.close();
    const reopened = await LocalKeystore.open(file, kB);
    expect((await reopened.persistedRoomKeys()).map((s) => s.key.session_id).sort()).toEqual(
      keys
        .slice(10)
        .map((k) => k.session_id)
        .sort(),
    );
    await reopened.close();
  });
});

describe('the keystore file is owner-only', () => {
  const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

  it('a new keystore and the -wal and -shm files SQLite makes beside it are 0600 under umask 022', async () => {
    const keystore = await LocalKeystore.open(file, kB);
    await keystore.addRoomKeys(makeRoomKeys(3).map((key) => ({ key })));
    expect(modeOf(file)).toBe('600');
    for (const companion of [`${file}-wal`, `${file}-shm`]) {
      if (existsSync(companion)) expect(modeOf(companion)).toBe('600');
    }
    expect(existsSync(`${file}-shm`)).toBe(true);
    await keystore.close();
  });

  it('a keystore an earlier version left 0644 is tightened when opened', async () => {
    const db = new Database(file);
    db.close();
    expect(modeOf(file)).toBe('644');
    const keystore = await LocalKeystore.open(file, kB);
    expect(modeOf(file)).toBe('600');
    await keystore.close();
  });
});
