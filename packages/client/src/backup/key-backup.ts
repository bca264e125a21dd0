import {
  type BackupAuthDataBody,
  type BackupPage,
  type BackupVersionInfoBody,
  canonicalJson,
  checkStorageKey,
  constantTimeEqual,
  decodeRecoveryKey,
  decryptFromBackup,
  deriveBackupSigningSeed,
  deriveKeyFromPassphrase,
  deriveSecretStorageKeyFromKB,
  encodeRecoveryKey,
  encryptForBackup,
  fromBase64,
  fromUtf8,
  type KB,
  LatchkeyError,
  MAX_BACKUP_BATCH,
  type MatrixCrypto,
  type RoomKey,
  roomKeyFromPlaintext,
  type StorageKeyListBody,
  toBackupPlaintext,
  toBase64,
  utf8,
} from '@latchkey/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import { type LocalKeystore, rankOf, type StoredRoomKey } from '../keystore/keystore.js';
import { randomBytes } from '../random.js';
import { type AuthedRequest, SecretStorage } from './secret-storage.js';

/** The secret-storage name under which the backup private key lives (spec). */
export const BACKUP_SECRET = 'm.megolm_backup.v1';
const RECOVERY_KEY_ID = 'recovery';
const KB_KEY_ID = 'kb';
const SIGNING_KEY_ID = 'ed25519:latchkey-backup';
/** Element's and matrix-rust-sdk's default for passphrase-derived keys. */
export const DEFAULT_PASSPHRASE_ITERATIONS = 500_000;

/** Progress of a long backup operation, for a bar: keys done of total, rate, and time left. */
export interface BackupProgress {
  phase: 'upload' | 'download' | 'import';
  done: number;
  total: number;
  keysPerSecond: number;
  secondsLeft: number;
}

export type ProgressListener = (progress: BackupProgress) => void;

/** How to reach the backup key on a device that has nothing else. */
export type RecoverySecret = { recoveryKey: string } | { passphrase: string } | { trustedDevice: true };

function progressMeter(phase: BackupProgress['phase'], total: number, listener?: ProgressListener) {
  const started = performance.now();
  return (done: number) => {
    if (listener === undefined) return;
    const seconds = (performance.now() - started) / 1000;
    const keysPerSecond = seconds > 0 ? done / seconds : 0;
    listener({
      phase,
      done,
      total,
      keysPerSecond,
      secondsLeft: keysPerSecond > 0 ? (total - done) / keysPerSecond : 0,
    });
  };
}

const alphanumeric = (length: number) =>
  Array.from(randomBytes(length), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[b % 62]).join(
    '',
  );

/**
 * Server-side key backup from the SDK (Matrix design): keys are encrypted to a backup public key; its
 * private half sits in secret storage under a recovery key (shown once), optionally a passphrase, and
 * a key derived from kB so any device that logs in with the password can restore ("trusted device").
 */
/** The background upload: the interval's timer and the batch in flight, awaited before the next. */
interface BackgroundLoop {
  timer?: ReturnType<typeof setInterval>;
  running: Promise<unknown>;
}

export class KeyBackup {
  private readonly secrets: SecretStorage;
  private loop: BackgroundLoop | undefined;

  constructor(
    private readonly request: AuthedRequest,
    private readonly accountId: string,
    private readonly kB: () => KB,
    private readonly keystore: LocalKeystore,
    private readonly crypto: MatrixCrypto,
  ) {
    this.secrets = new SecretStorage(request, crypto);
  }

  private signingKey() {
    return deriveBackupSigningSeed(this.kB());
  }

  /** auth_data signed as Matrix signed JSON (canonical JSON without `signatures`, Ed25519). */
  private signAuthData(publicKey: Uint8Array): BackupAuthDataBody {
    const unsigned = { public_key: toBase64(publicKey) };
    const signature = ed25519.sign(utf8(canonicalJson(unsigned)), this.signingKey());
    return { ...unsigned, signatures: { [this.accountId]: { [SIGNING_KEY_ID]: toBase64(signature) } } };
  }

  /** True when auth_data carries this account's valid signature (spec trust rule (a)). */
  isTrusted(authData: BackupAuthDataBody): boolean {
    const signature = authData.signatures?.[this.accountId]?.[SIGNING_KEY_ID];
    if (signature === undefined) return false;
    const {
      signatures: _signatures,
      unsigned: _unsigned,
      ...signed
    } = authData as BackupAuthDataBody & { unsigned?: unknown };
    try {
      const publicKey = ed25519.getPublicKey(this.signingKey());
      return ed25519.verify(fromBase64(signature), utf8(canonicalJson(signed)), publicKey);
    } catch {
      return false;
    }
  }

  /**
   * Creates a backup: a fresh backup key pair, a new version with signed auth_data, and the private
   * key stored in secret storage. Returns the recovery key: show it once, the server never sees it.
   */
  async enable(options: { passphrase?: string; trustLoggedInDevices?: boolean } = {}) {
    const backupKey = randomBytes(32);
    const { version } = await this.request<{ version: string }>('POST', '/v1/backup/version', {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: this.signAuthData(this.crypto.x25519PublicKey(backupKey)),
    });
    const { storageKey, description } = await this.newRecoveryStorageKey(options.passphrase);
    await this.secrets.describeKey(RECOVERY_KEY_ID, storageKey, description);
    await this.secrets.setDefaultKey(RECOVERY_KEY_ID);
    const holders = [{ keyId: RECOVERY_KEY_ID, key: storageKey }];
    if (options.trustLoggedInDevices !== false) {
      const kbKey = deriveSecretStorageKeyFromKB(this.kB());
      await this.secrets.describeKey(KB_KEY_ID, kbKey, { name: 'Devices logged in to this account' });
      holders.push({ keyId: KB_KEY_ID, key: kbKey });
    }
    await this.secrets.store(BACKUP_SECRET, utf8(toBase64(backupKey)), holders);
    const recoveryKey = encodeRecoveryKey(storageKey);
    storageKey.fill(0);
    backupKey.fill(0);
    return { version, recoveryKey };
  }

  /** A fresh recovery storage key: random, or from a passphrase (PBKDF2 with a new salt, spec `m.pbkdf2`). */
  private async newRecoveryStorageKey(passphrase: string | undefined) {
    const description: { name: string; passphrase?: { algorithm: 'm.pbkdf2'; salt: string; iterations: number } } = {
      name: 'Recovery key',
    };
    if (passphrase === undefined) return { storageKey: randomBytes(32), description };
    description.passphrase = {
      algorithm: 'm.pbkdf2',
      salt: alphanumeric(32),
      iterations: DEFAULT_PASSPHRASE_ITERATIONS,
    };
    return { storageKey: await deriveKeyFromPassphrase(this.crypto, passphrase, description.passphrase), description };
  }

  /**
   * Replaces the recovery key (and any passphrase) with a new one; the backup key is unchanged, so the
   * backed-up keys stay as they are. The backup key is reached through kB, so only a device logged in
   * with the password can do this. Afterwards the old recovery key and passphrase open nothing.
   * Returns the new recovery key: show it once, the server never sees it.
   */
  async replaceRecoveryKey(options: { passphrase?: string } = {}): Promise<{ version: string; recoveryKey: string }> {
    const info = await this.current();
    if (info === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
    const backupKey = await this.unlock({ trustedDevice: true }, info);
    try {
      const { storageKey, description } = await this.newRecoveryStorageKey(options.passphrase);
      const kbKey = deriveSecretStorageKeyFromKB(this.kB());
      try {
        // Order matters. The secret is stored again under the new key and the kB key first, replacing
        // every other copy; the new key's description (its key check) is written last. Interrupted in
        // between, the description still names the old key, which passes its check but no longer opens
        // the secret (LK_SECRET_DECRYPT_FAILED), while the kB path still does: running this again
        // finishes the job, and the old key never works again.
        await this.secrets.store(BACKUP_SECRET, utf8(toBase64(backupKey)), [
          { keyId: RECOVERY_KEY_ID, key: storageKey },
          { keyId: KB_KEY_ID, key: kbKey },
        ]);
        await this.secrets.describeKey(RECOVERY_KEY_ID, storageKey, description);
        return { version: info.version, recoveryKey: encodeRecoveryKey(storageKey) };
      } finally {
        storageKey.fill(0);
        kbKey.fill(0);
      }
    } finally {
      backupKey.fill(0);
    }
  }

  /**
   * True when `recoveryKey` is this account's current recovery key (checked against the key check of
   * its description; nothing is decrypted). A malformed key is `LK_BAD_RECOVERY_KEY` with
   * `details.reason`; an account without a recovery key is `LK_NO_RECOVERY_METHOD`.
   */
  async verifyRecoveryKey(recoveryKey: string): Promise<boolean> {
    const storageKey = decodeRecoveryKey(recoveryKey);
    try {
      const { keys } = await this.secrets.keys();
      if (keys[RECOVERY_KEY_ID] === undefined) {
        throw new LatchkeyError('LK_NO_RECOVERY_METHOD', 'This account has no recovery key: enable the backup first.');
      }
      return this.matchesRecoveryKey(storageKey, keys);
    } finally {
      storageKey.fill(0);
    }
  }

  /** True when the storage key passes the recovery key's key check (false when there is none). */
  private matchesRecoveryKey(storageKey: Uint8Array, keys: StorageKeyListBody['keys']): boolean {
    const description = keys[RECOVERY_KEY_ID];
    return description !== undefined && checkStorageKey(this.crypto, storageKey, description);
  }

  async current(): Promise<BackupVersionInfoBody | undefined> {
    try {
      return await this.request<BackupVersionInfoBody>('GET', '/v1/backup/version');
    } catch (error) {
      if (error instanceof LatchkeyError && error.code === 'LK_BACKUP_NOT_FOUND') return undefined;
      throw error;
    }
  }

  /** The backup's state as this device sees it. */
  async status() {
    const info = await this.current();
    if (info === undefined) return { enabled: false as const };
    const pending = (await this.keystore.pendingBackup(info.version)).length;
    return {
      enabled: true as const,
      version: info.version,
      count: info.count,
      etag: info.etag,
      pending,
      trusted: this.isTrusted(info.auth_data),
    };
  }

  /**
   * Uploads every persisted key not yet in the current backup, in batches. Each batch is marked
   * backed up only after the server acknowledged it, so an interruption loses nothing: the next call
   * resumes with what is left.
   */
  async uploadPending(onProgress?: ProgressListener): Promise<{ uploaded: number; version: string }> {
    const info = await this.current();
    if (info === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
    if (!this.isTrusted(info.auth_data)) throw new LatchkeyError('LK_BACKUP_UNTRUSTED');
    const publicKey = fromBase64(info.auth_data.public_key, 'public_key');
    const pending = await this.keystore.pendingBackup(info.version);
    const report = progressMeter('upload', pending.length, onProgress);
    for (let i = 0; i < pending.length; i += MAX_BACKUP_BATCH) {
      const batch = pending.slice(i, i + MAX_BACKUP_BATCH);
      await this.request('PUT', `/v1/backup/keys?version=${info.version}`, {
        rooms: this.encryptBatch(publicKey, batch),
      });
      await this.keystore.markBackedUp(batch, info.version);
      report(i + batch.length);
    }
    return { uploaded: pending.length, version: info.version };
  }

  private encryptBatch(publicKey: Uint8Array, batch: StoredRoomKey[]) {
    const rooms: Record<string, { sessions: Record<string, unknown> }> = {};
    for (const stored of batch) {
      const { is_verified, first_message_index, forwarded_count } = rankOf(stored);
      const room = rooms[stored.key.room_id] ?? { sessions: {} };
      rooms[stored.key.room_id] = room;
      room.sessions[stored.key.session_id] = {
        first_message_index,
        forwarded_count,
        is_verified,
        session_data: encryptForBackup(this.crypto, publicKey, utf8(toBackupPlaintext(stored.key))),
      };
    }
    return rooms;
  }

  /** Uploads in the background every `intervalMs` until {@link stop}; failures wait for the next turn. */
  start(intervalMs = 10_000, onError?: (error: unknown) => void): void {
    if (this.loop !== undefined) return;
    const loop: BackgroundLoop = { running: Promise.resolve() };
    const tick = () => {
      loop.running = this.uploadPending().catch((error: unknown) => onError?.(error));
    };
    loop.timer = setInterval(() => void loop.running.then(tick), intervalMs);
    this.loop = loop;
    tick();
  }

  /** Stops the background loop after the batch in flight. */
  async stop(): Promise<void> {
    if (this.loop === undefined) return;
    clearInterval(this.loop.timer);
    await this.loop.running;
    this.loop = undefined;
  }

  /**
   * Recovers the backup private key from secret storage with a recovery key, a passphrase, or (on a
   * device logged in with the password) the kB-derived storage key, and checks it matches auth_data.
   */
  async unlock(secret: RecoverySecret, info: BackupVersionInfoBody): Promise<Uint8Array> {
    const { keys } = await this.secrets.keys();
    let keyId: string;
    let storageKey: Uint8Array;
    if ('recoveryKey' in secret) {
      keyId = RECOVERY_KEY_ID;
      storageKey = decodeRecoveryKey(secret.recoveryKey);
      if (!this.matchesRecoveryKey(storageKey, keys)) {
        throw new LatchkeyError(
          'LK_BAD_RECOVERY_KEY',
          'That recovery key is well formed, but it is not the one for this backup.',
          {
            reason: 'mismatch',
          },
        );
      }
    } else if ('passphrase' in secret) {
      keyId = RECOVERY_KEY_ID;
      const description = keys[keyId];
      if (description?.passphrase === undefined)
        throw new LatchkeyError('LK_NO_RECOVERY_METHOD', 'This backup has no passphrase; use the recovery key.');
      storageKey = await deriveKeyFromPassphrase(this.crypto, secret.passphrase, description.passphrase);
      if (!checkStorageKey(this.crypto, storageKey, description)) throw new LatchkeyError('LK_BAD_PASSPHRASE');
    } else {
      keyId = KB_KEY_ID;
      const description = keys[keyId];
      if (description === undefined)
        throw new LatchkeyError('LK_NO_RECOVERY_METHOD', 'Logged-in devices were not given access to this backup.');
      storageKey = deriveSecretStorageKeyFromKB(this.kB());
      if (!checkStorageKey(this.crypto, storageKey, description)) {
        throw new LatchkeyError(
          'LK_NO_RECOVERY_METHOD',
          'The password was reset since this backup was set up, so a login no longer opens it. Restore once ' +
            'with the recovery key (or passphrase); then logged-in devices can again.',
          { reason: 'kb-changed' },
        );
      }
    }
    const item = await this.secrets.fetch(BACKUP_SECRET);
    const opened = this.secrets.open(item, BACKUP_SECRET, keyId, storageKey);
    if (opened === undefined) throw new LatchkeyError('LK_NO_RECOVERY_METHOD');
    const backupKey = fromBase64(fromUtf8(opened), BACKUP_SECRET);
    if (!constantTimeEqual(this.crypto.x25519PublicKey(backupKey), fromBase64(info.auth_data.public_key))) {
      throw new LatchkeyError('LK_BACKUP_KEY_MISMATCH');
    }
    if (keyId === RECOVERY_KEY_ID) await this.renewLoggedInAccess(keys, storageKey, backupKey);
    return backupKey;
  }

  /**
   * After a password reset kB is new, and the backup's copy for logged-in devices opens with nothing.
   * Once someone proves the recovery key (or passphrase), that copy is made again under the new kB, so
   * a login restores again. Nothing happens when the copy is current, or was never granted.
   */
  private async renewLoggedInAccess(
    keys: StorageKeyListBody['keys'],
    recoveryStorageKey: Uint8Array,
    backupKey: Uint8Array,
  ): Promise<void> {
    const description = keys[KB_KEY_ID];
    if (description === undefined) return;
    const kbKey = deriveSecretStorageKeyFromKB(this.kB());
    try {
      if (checkStorageKey(this.crypto, kbKey, description)) return;
      // The secret first, the description (its key check) last: interrupted, the old check still
      // fails and the next recovery-key restore does this again.
      await this.secrets.store(BACKUP_SECRET, utf8(toBase64(backupKey)), [
        { keyId: RECOVERY_KEY_ID, key: recoveryStorageKey },
        { keyId: KB_KEY_ID, key: kbKey },
      ]);
      await this.secrets.describeKey(KB_KEY_ID, kbKey, {
        name: description.name ?? 'Devices logged in to this account',
      });
    } finally {
      kbKey.fill(0);
    }
  }

  /**
   * Restores every key of the current backup into the local keystore: pages through the server,
   * decrypts, and imports in batches, reporting progress. A wrong secret fails before anything is
   * imported. Keys that do not decrypt are counted, not fatal.
   */
  async restore(secret: RecoverySecret, onProgress?: ProgressListener) {
    const info = await this.current();
    if (info === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
    const backupKey = await this.unlock(secret, info);
    const report = progressMeter('import', info.count, onProgress);
    let imported = 0;
    let failed = 0;
    let done = 0;
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '' : `&cursor=${cursor}`;
      const page: BackupPage = await this.request<BackupPage>(
        'GET',
        `/v1/backup/keys?version=${info.version}&limit=5000${query}`,
      );
      const entries: Array<{ key: RoomKey; meta: { verified: boolean; forwardedCount: number } }> = [];
      for (const item of page.keys) {
        try {
          const json = JSON.parse(fromUtf8(decryptFromBackup(this.crypto, backupKey, item.session_data))) as Record<
            string,
            unknown
          >;
          const key = roomKeyFromPlaintext(item.room_id, item.session_id, json);
          if (key === undefined) failed++;
          else entries.push({ key, meta: { verified: item.is_verified, forwardedCount: item.forwarded_count } });
        } catch {
          failed++;
        }
      }
      imported += await this.keystore.importFromBackup(entries, info.version);
      done += page.keys.length;
      report(done);
      cursor = page.next_cursor;
    } while (cursor !== null);
    backupKey.fill(0);
    return { version: info.version, total: done, imported, failed };
  }

  /**
   * Deletes a backup version and its keys from the server: `version` when given (the one a person
   * confirmed, even if another device has since made a newer one current), else the current one.
   */
  async delete(version?: string): Promise<void> {
    const target = version ?? (await this.current())?.version;
    if (target === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
    await this.request('DELETE', `/v1/backup/version/${encodeURIComponent(target)}`);
  }
}
