import {
  checkRoomKeySession,
  constantTimeEqual,
  deriveLocalStoreKeys,
  firstKnownIndex,
  fromUtf8,
  hmacSha256,
  isBetterBackupKey,
  isEarlierCopyOfSession,
  type KB,
  LatchkeyError,
  type LocalStoreKeys,
  localStoreKeyCheck,
  openEnvelope,
  type RoomKey,
  type RoomKeyMeta,
  sealEnvelope,
  toBase64Url,
  toHex,
  utf8,
} from '@latchkey/core';
import { eraseRecordBackend, openRecordBackend } from '#platform';
import { randomBytes } from '../random.js';
import type { RecordBackend, StoredRecord } from './record-backend.js';

/** A room key as the keystore keeps it: the key, what ranks it, and which backup version holds it. */
export interface StoredRoomKey {
  key: RoomKey;
  meta: RoomKeyMeta;
  /** The backup version this exact key was uploaded to, if any. */
  backedUpIn?: string;
}

const ROOM_KEYS = 'room-key';
const DEVICE_ID = 'device-id';
const KEY_CHECK = 'key-check';
/** How many records {@link LocalKeystore.persistedRoomKeys} opens between two progress reports. */
const OPEN_PROGRESS_EVERY = 1000;

export const rankOf = (stored: StoredRoomKey) => ({
  is_verified: stored.meta.verified === true,
  first_message_index: firstKnownIndex(stored.key.session_key),
  forwarded_count: stored.meta.forwardedCount ?? 0,
});

/** Whether `a` is the better copy of one room key than `b`, by the backup's rule (core isBetterBackupKey). */
const outranks = (a: StoredRoomKey, b: StoredRoomKey) => isBetterBackupKey(rankOf(a), rankOf(b));

/**
 * The device's local keystore, encrypted under keys derived from kB and the device id (core
 * `deriveLocalStoreKeys`). Record ids are HMACs of the room and session ids, so a stolen device shows
 * neither names nor keys. Keys marked ephemeral ("do not store") live only in memory: never written,
 * never backed up, never exported.
 */
export class LocalKeystore {
  private keys: LocalStoreKeys | undefined;
  private closed = false;
  private readonly ephemeral = new Map<string, StoredRoomKey>();

  private constructor(
    private readonly backend: RecordBackend,
    keys: LocalStoreKeys,
    readonly deviceId: string,
  ) {
    this.keys = keys;
  }

  /**
   * Opens (or creates) the keystore at `location`: a file path in Node, an IndexedDB name in a browser.
   * A store sealed under another kB (the password was reset since) is `LK_KEYSTORE_KEY_CHANGED`: its
   * records open with nothing now, so it is left as it is for the caller to {@link erase}.
   */
  static async open(location: string, kB: KB): Promise<LocalKeystore> {
    const backend = await openRecordBackend(location);
    try {
      let deviceId = await backend.getMeta(DEVICE_ID);
      if (deviceId === undefined) {
        deviceId = toBase64Url(randomBytes(16));
        await backend.setMeta(DEVICE_ID, deviceId);
      }
      const keys = deriveLocalStoreKeys(kB, deviceId);
      await LocalKeystore.checkKeys(backend, keys, location);
      return new LocalKeystore(backend, keys, deviceId);
    } catch (error) {
      await backend.close();
      throw error;
    }
  }

  /** Records the key check on first use; afterwards a different one means another kB. */
  private static async checkKeys(backend: RecordBackend, keys: LocalStoreKeys, location: string): Promise<void> {
    const check = toHex(localStoreKeyCheck(keys));
    const stored = await backend.getMeta(KEY_CHECK);
    if (stored === undefined) return backend.setMeta(KEY_CHECK, check);
    if (!constantTimeEqual(utf8(stored), utf8(check))) {
      keys.sealKey.fill(0);
      keys.idKey.fill(0);
      throw new LatchkeyError('LK_KEYSTORE_KEY_CHANGED', undefined, { location });
    }
  }

  /**
   * Deletes the keystore at `location` with every key in it, readable or not: what to do with a store
   * that is `LK_KEYSTORE_KEY_CHANGED`, before restoring from the backup. Close it first if open.
   */
  static erase(location: string): Promise<void> {
    return eraseRecordBackend(location);
  }

  /** The backend, while the store is open: a closed store answers LK_KEYSTORE_CLOSED, not a driver error. */
  private records(): RecordBackend {
    if (this.closed) throw new LatchkeyError('LK_KEYSTORE_CLOSED');
    return this.backend;
  }

  private requireKeys(): LocalStoreKeys {
    if (this.keys === undefined) throw new LatchkeyError('LK_KEYSTORE_CLOSED');
    return this.keys;
  }

  private recordId(roomId: string, sessionId: string): string {
    return toHex(hmacSha256(this.requireKeys().idKey, utf8(`${roomId}\u0000${sessionId}`)).subarray(0, 20));
  }

  private seal(id: string, stored: StoredRoomKey): StoredRecord {
    const aad = utf8(`${ROOM_KEYS}\u0000${id}`);
    return {
      id,
      value: sealEnvelope(this.requireKeys().sealKey, utf8(JSON.stringify(stored)), aad, randomBytes(12)),
    };
  }

  private open(record: StoredRecord): StoredRoomKey {
    const aad = utf8(`${ROOM_KEYS}\u0000${record.id}`);
    return JSON.parse(fromUtf8(openEnvelope(this.requireKeys().sealKey, record.value, aad))) as StoredRoomKey;
  }

  /**
   * Adds room keys. A key that is already held is replaced only by a better one (the backup's rule),
   * so re-importing never loses history. Returns how many were added or improved.
   *
   * Every key must carry its own session id (the Ed25519 key inside its session_key): one that does
   * not is `LK_ROOM_KEY_REFUSED`, and then nothing of the batch is added. Under another session's id,
   * a key that starts earlier would outrank the held one and replace it.
   */
  async addRoomKeys(entries: Array<{ key: RoomKey; meta?: RoomKeyMeta }>, options: { ephemeral?: boolean } = {}) {
    for (const { key } of entries) checkRoomKeySession(key);
    if (options.ephemeral) return this.holdEphemeral(entries);
    const records: StoredRecord[] = [];
    for (const { key, meta } of entries) {
      const id = this.recordId(key.room_id, key.session_id);
      const candidate: StoredRoomKey = { key, meta: meta ?? {} };
      // Marked "do not store" while this store is open: the mark holds, the key stays in memory.
      const held = this.ephemeral.get(id);
      if (held !== undefined) {
        if (outranks(candidate, held)) this.ephemeral.set(id, candidate);
        continue;
      }
      const existingBytes = await this.records().get(ROOM_KEYS, id);
      if (existingBytes !== undefined && !outranks(candidate, this.open({ id, value: existingBytes }))) {
        continue;
      }
      records.push(this.seal(id, candidate));
    }
    await this.records().putMany(ROOM_KEYS, records);
    return records.length;
  }

  /**
   * Keeps keys in memory only. A copy already on disk (stored before the key was marked) is deleted,
   * so from now on it is neither stored, uploaded nor exported; one already uploaded stays there.
   */
  private async holdEphemeral(entries: Array<{ key: RoomKey; meta?: RoomKeyMeta }>): Promise<number> {
    const onDiskIds: string[] = [];
    for (const { key, meta } of entries) {
      const id = this.recordId(key.room_id, key.session_id);
      // The best of the three copies is kept (the backup's rule): marking never loses history, and a
      // copy already held wins a tie, as it does everywhere else.
      let best: StoredRoomKey = { key, meta: meta ?? {} };
      const held = this.ephemeral.get(id);
      if (held !== undefined && !outranks(best, held)) best = held;
      const onDisk = await this.records().get(ROOM_KEYS, id);
      if (onDisk !== undefined) {
        const stored = this.open({ id, value: onDisk });
        if (!outranks(best, stored)) best = { key: stored.key, meta: stored.meta };
        onDiskIds.push(id);
      }
      this.ephemeral.set(id, best);
    }
    if (onDiskIds.length > 0) await this.records().deleteMany(ROOM_KEYS, onDiskIds);
    return entries.length;
  }

  /**
   * Imports keys that came from the backup itself: already held there, so not queued for upload again.
   * Whoever holds the backup public key (the server does) can write entries that decrypt, and the
   * server's labels (is_verified, forwarded_count) are unauthenticated, so a backup copy is held as
   * unverified (as matrix-sdk-crypto holds backed-up keys) and never replaces a key already held,
   * unless it is the same session starting earlier: the same Ed25519 key, and a ratchet that advances
   * to the held one (core isEarlierCopyOfSession). Then only its ratchet is taken; the held key's sender
   * and trust stay, as the held key is what they were established for. Returns how many were stored.
   */
  async importFromBackup(
    entries: Array<{ key: RoomKey; meta: Pick<RoomKeyMeta, 'forwardedCount'> }>,
    version: string,
  ): Promise<number> {
    const existing = new Map<string, StoredRoomKey>();
    const ids = entries.map(({ key }) => this.recordId(key.room_id, key.session_id));
    for (const id of ids) {
      const bytes = await this.records().get(ROOM_KEYS, id);
      if (bytes !== undefined) existing.set(id, this.open({ id, value: bytes }));
    }
    const records: StoredRecord[] = [];
    entries.forEach(({ key, meta }, i) => {
      const id = ids[i] as string;
      if (this.ephemeral.has(id)) return; // marked "do not store" here: the backup's copy is not taken in
      const held = existing.get(id);
      const unverified: RoomKeyMeta = meta.forwardedCount === undefined ? {} : { forwardedCount: meta.forwardedCount };
      if (held === undefined) {
        records.push(this.seal(id, { key, meta: unverified, backedUpIn: version }));
      } else if (isEarlierCopyOfSession(key.session_key, held.key.session_key)) {
        const earlier: StoredRoomKey = { key: { ...held.key, session_key: key.session_key }, meta: held.meta };
        // A verified key held here is better than the backup's unverified copy: it goes up again.
        if (held.meta.verified !== true) earlier.backedUpIn = version;
        records.push(this.seal(id, earlier));
      }
    });
    await this.records().putMany(ROOM_KEYS, records);
    return records.length;
  }

  async getRoomKey(roomId: string, sessionId: string): Promise<StoredRoomKey | undefined> {
    const id = this.recordId(roomId, sessionId);
    const held = this.ephemeral.get(id);
    if (held !== undefined) return held;
    const bytes = await this.records().get(ROOM_KEYS, id);
    return bytes === undefined ? undefined : this.open({ id, value: bytes });
  }

  /**
   * Every persisted key (ephemeral ones are never included: they are not to be stored anywhere).
   * Opening each record is most of the time a large store takes, so `onProgress` (if given) hears how
   * many are open of how many: every {@link OPEN_PROGRESS_EVERY} records and at the last.
   */
  async persistedRoomKeys(onProgress?: (done: number, total: number) => void): Promise<StoredRoomKey[]> {
    const records = await this.records().getAll(ROOM_KEYS);
    return records.map((record, i) => {
      const stored = this.open(record);
      const done = i + 1;
      if (onProgress !== undefined && (done % OPEN_PROGRESS_EVERY === 0 || done === records.length)) {
        onProgress(done, records.length);
      }
      return stored;
    });
  }

  /** Persisted keys not yet uploaded to `version`. */
  async pendingBackup(version: string): Promise<StoredRoomKey[]> {
    return (await this.persistedRoomKeys()).filter((stored) => stored.backedUpIn !== version);
  }

  /** Records that these keys are now held by backup `version`. */
  async markBackedUp(keys: StoredRoomKey[], version: string): Promise<void> {
    await this.records().putMany(
      ROOM_KEYS,
      keys.map((stored) =>
        this.seal(this.recordId(stored.key.room_id, stored.key.session_id), { ...stored, backedUpIn: version }),
      ),
    );
  }

  async count(): Promise<{ persisted: number; ephemeral: number }> {
    return { persisted: await this.records().count(ROOM_KEYS), ephemeral: this.ephemeral.size };
  }

  /** Forgets the keys (and every ephemeral room key) and closes the backend. */
  async close(): Promise<void> {
    if (this.closed) return; // closing twice (by its owner, then by logOut) is harmless
    this.closed = true;
    if (this.keys !== undefined) {
      this.keys.sealKey.fill(0);
      this.keys.idKey.fill(0);
      this.keys = undefined;
    }
    this.ephemeral.clear();
    await this.backend.close();
  }
}
