import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKeystore, type RoomKey, type RoomKeyMeta, randomBytes } from '@latchkey/client';
import {
  advanceRatchet,
  type BackupKeyRank,
  firstKnownIndex,
  fromBase64,
  isBetterBackupKey,
  type KB,
  parseExportedSession,
  toBase64,
} from '@latchkey/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeRoomKey } from '../../../test/support/room-keys.js';
import { BETTER_KEY_CASES } from '../../core/test/better-key-cases.js';

/**
 * The keystore never lets a worse copy of a room key replace a better one it holds, by the backup's
 * own rule (core isBetterBackupKey), on every way a copy comes in: added, restored from the backup,
 * added while marked "do not store", and marked with a copy on disk or in memory. On the Node backend
 * (a real SQLite file), real seals; copies of one session differ in their bytes, so which copy is
 * held is read from the bytes.
 */

/** A copy of `base` (same room and session) ranking as `rank`: fresh key bytes, index in bytes 1–4. */
function copyOf(base: RoomKey, rank: BackupKeyRank): { key: RoomKey; meta?: RoomKeyMeta } {
  const bytes = fromBase64(base.session_key).slice();
  // The ratchet only: a copy of one session keeps its Ed25519 key, which is its session id.
  bytes.set(randomBytes(128), 5);
  new DataView(bytes.buffer).setUint32(1, rank.first_message_index);
  const key = { ...base, session_key: toBase64(bytes) };
  expect(firstKnownIndex(key.session_key)).toBe(rank.first_message_index);
  // An unverified, never forwarded copy carries no meta at all: the defaults must rank it as such.
  const meta: RoomKeyMeta = {
    ...(rank.is_verified ? { verified: true } : {}),
    ...(rank.forwarded_count > 0 ? { forwardedCount: rank.forwarded_count } : {}),
  };
  return Object.keys(meta).length === 0 ? { key } : { key, meta };
}

describe.each(BETTER_KEY_CASES)(
  'the keystore keeps the better copy: %s',
  (_why, candidateRank, existingRank, replaces) => {
    let dir: string;
    let file: string;
    let kB: KB;
    let keystore: LocalKeystore;
    let existing: { key: RoomKey; meta?: RoomKeyMeta };
    let candidate: { key: RoomKey; meta?: RoomKeyMeta };
    /** The copy the rule keeps: the candidate only if it is strictly better. */
    let kept: { key: RoomKey; meta?: RoomKeyMeta };

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'latchkey-keystore-rank-'));
      file = join(dir, 'device.db');
      kB = randomBytes(32) as KB;
      keystore = await LocalKeystore.open(file, kB);
      const base = makeRoomKey(1, 1);
      existing = copyOf(base, existingRank);
      candidate = copyOf(base, candidateRank);
      expect(candidate.key.session_key).not.toBe(existing.key.session_key);
      kept = replaces ? candidate : existing;
    });
    afterEach(async () => {
      await keystore.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const held = () => keystore.getRoomKey(existing.key.room_id, existing.key.session_id);

    it('added over a stored copy', async () => {
      expect(await keystore.addRoomKeys([existing])).toBe(1);
      expect(await keystore.addRoomKeys([candidate])).toBe(replaces ? 1 : 0);
      expect(await held()).toEqual({ key: kept.key, meta: kept.meta ?? {} });
      // What is on disk, not only what a read answers: reopened, the same copy.
      await keystore.close();
      keystore = await LocalKeystore.open(file, kB);
      expect((await keystore.persistedRoomKeys()).map((stored) => stored.key)).toEqual([kept.key]);
    });

    it('restored from the backup over a stored copy: never replaces it (these copies are not one ratchet), and it stays pending', async () => {
      // Issue 8: a backup copy is not authenticated, so it replaces a held key only when it is the
      // same session from an earlier message (see the tests below); these copies each have their own
      // random ratchet, so the held one stays, whatever the backup's copy ranks.
      expect(await keystore.addRoomKeys([existing])).toBe(1);
      expect(await keystore.importFromBackup([{ key: candidate.key, meta: candidate.meta ?? {} }], '4')).toBe(0);
      expect(await held()).toEqual({ key: existing.key, meta: existing.meta ?? {} });
      expect((await keystore.pendingBackup('4')).map((stored) => stored.key)).toEqual([existing.key]);
    });

    it('added over a copy restored from the backup (held unverified), and then pending upload if better', async () => {
      expect(await keystore.importFromBackup([{ key: existing.key, meta: existing.meta ?? {} }], '4')).toBe(1);
      // Whatever the backup's labels said, its copy is held unverified: ranked as such from then on.
      const restored = await held();
      expect(restored?.meta.verified).toBeUndefined();
      const wins = isBetterBackupKey(candidateRank, { ...existingRank, is_verified: false });
      expect(await keystore.addRoomKeys([candidate])).toBe(wins ? 1 : 0);
      expect((await held())?.key).toEqual(wins ? candidate.key : existing.key);
      expect((await keystore.pendingBackup('4')).map((stored) => stored.key)).toEqual(wins ? [candidate.key] : []);
    });

    it('added while a copy is held as "do not store": the better one is held, neither stored', async () => {
      await keystore.addRoomKeys([existing], { ephemeral: true });
      expect(await keystore.addRoomKeys([candidate])).toBe(0);
      expect(await held()).toEqual({ key: kept.key, meta: kept.meta ?? {} });
      expect(await keystore.count()).toEqual({ persisted: 0, ephemeral: 1 });
    });

    it('marked "do not store" with a copy held in memory', async () => {
      await keystore.addRoomKeys([existing], { ephemeral: true });
      await keystore.addRoomKeys([candidate], { ephemeral: true });
      expect(await held()).toEqual({ key: kept.key, meta: kept.meta ?? {} });
      expect(await keystore.count()).toEqual({ persisted: 0, ephemeral: 1 });
    });

    it('marked "do not store" with a copy on disk: the disk copy goes, the better one is held', async () => {
      expect(await keystore.addRoomKeys([existing])).toBe(1);
      await keystore.addRoomKeys([candidate], { ephemeral: true });
      expect(await held()).toEqual({ key: kept.key, meta: kept.meta ?? {} });
      expect(await keystore.count()).toEqual({ persisted: 0, ephemeral: 1 });
    });
  },
);

/** `key` with its ratchet advanced to start at `index`: the same session, as a later receiver holds it. */
function startingAt(key: RoomKey, index: number): RoomKey {
  const { firstIndex, ratchet } = parseExportedSession(key.session_key);
  const bytes = fromBase64(key.session_key).slice();
  bytes.set(advanceRatchet(ratchet, firstIndex, index), 5);
  new DataView(bytes.buffer).setUint32(1, index);
  return { ...key, session_key: toBase64(bytes) };
}

describe('a backup copy replaces a held key only when it is the same session from an earlier message', () => {
  let dir: string;
  let keystore: LocalKeystore;
  const base = makeRoomKey(1, 1);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-keystore-earlier-'));
    keystore = await LocalKeystore.open(join(dir, 'device.db'), randomBytes(32) as KB);
  });
  afterEach(async () => {
    await keystore.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const held = () => keystore.getRoomKey(base.room_id, base.session_id);

  it('an earlier copy of an unverified key: its ratchet is taken, and it counts as backed up', async () => {
    await keystore.addRoomKeys([{ key: startingAt(base, 9), meta: { forwardedCount: 2 } }]);
    expect(await keystore.importFromBackup([{ key: startingAt(base, 3), meta: { forwardedCount: 0 } }], '4')).toBe(1);
    expect(await held()).toEqual({ key: startingAt(base, 3), meta: { forwardedCount: 2 }, backedUpIn: '4' });
  });

  it('an earlier copy of a verified key: only its ratchet; the held sender and trust stay, and it goes up again', async () => {
    await keystore.addRoomKeys([{ key: startingAt(base, 9), meta: { verified: true } }]);
    const backupCopy = { ...startingAt(base, 0), sender_claimed_keys: { ed25519: 'another sender' } };
    expect(await keystore.importFromBackup([{ key: backupCopy, meta: {} }], '4')).toBe(1);
    expect(await held()).toEqual({ key: startingAt(base, 0), meta: { verified: true } });
    expect((await keystore.pendingBackup('4')).map((stored) => stored.key)).toEqual([startingAt(base, 0)]);
  });

  it('a later copy, or one of the same index, leaves the held key as it is', async () => {
    await keystore.addRoomKeys([{ key: startingAt(base, 5) }]);
    expect(await keystore.importFromBackup([{ key: startingAt(base, 6), meta: {} }], '4')).toBe(0);
    expect(await keystore.importFromBackup([{ key: startingAt(base, 5), meta: {} }], '4')).toBe(0);
    expect((await held())?.key).toEqual(startingAt(base, 5));
  });

  it("a lower index claiming the session's key with a ratchet of its own: not taken", async () => {
    await keystore.addRoomKeys([{ key: startingAt(base, 5) }]);
    const forged = fromBase64(base.session_key).slice();
    forged.set(randomBytes(128), 5);
    expect(await keystore.importFromBackup([{ key: { ...base, session_key: toBase64(forged) }, meta: {} }], '4')).toBe(
      0,
    );
    expect((await held())?.key).toEqual(startingAt(base, 5));
  });
});
