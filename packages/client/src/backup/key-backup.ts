import {
  type BackupAuthDataBody,
  type BackupPage,
  type BackupRefusal,
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
  hasKeyCheck,
  type KB,
  LatchkeyError,
  MAX_BACKUP_BATCH,
  type MatrixCrypto,
  type PassphraseInfo,
  type RoomKey,
  roomKeyFromBackup,
  type SecretItemBody,
  type StorageKeyDescriptionBody,
  type StorageKeyListBody,
  storageKeyCandidates,
  toBackupPlaintext,
  toBase64,
  utf8,
} from '@latchkey/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import { type LocalKeystore, rankOf, type StoredRoomKey } from '../keystore/keystore.js';
import { randomBytes } from '../random.js';
import { type KeyProgress, progressMeter } from './progress.js';
import { type AuthedRequest, SecretStorage } from './secret-storage.js';

/** The secret-storage name under which the backup private key lives (spec). */
export const BACKUP_SECRET = 'm.megolm_backup.v1';
const RECOVERY_KEY_ID = 'recovery';
const KB_KEY_ID = 'kb';
const SIGNING_KEY_ID = 'ed25519:latchkey-backup';
/** Element's and matrix-rust-sdk's default for passphrase-derived keys. */
export const DEFAULT_PASSPHRASE_ITERATIONS = 500_000;

/**
 * Progress of a long backup operation, for a bar: keys done of total, rate, and time left. A restore
 * reports `import` as each downloaded page is decrypted and stored (download and import are one step).
 */
export type BackupProgress = KeyProgress<'upload' | 'import'>;

export type ProgressListener = (progress: BackupProgress) => void;

/** What a restore did: keys seen, stored here, that did not decrypt, and that were refused (and why). */
export interface RestoreResult {
  version: string;
  /** Every key of the backup. */
  total: number;
  /** Keys stored on this device (the rest were held already, as well or better, or refused). */
  imported: number;
  /** Keys that did not decrypt or were not Megolm keys at all. */
  failed: number;
  /** Keys filed under a room or session that is not their own: never imported. */
  refused: number;
  /** How many were refused for each reason (`LK_BACKUP_KEY_REFUSED`'s `details.reason`). */
  refusals: Partial<Record<BackupRefusal, number>>;
}

/**
 * What {@link KeyBackup.verifyRecoveryKey} can tell of a recovery key: this account's, not this
 * account's, or not knowable because the key description it would match carries no key check.
 */
export type RecoveryKeyCheck = 'valid' | 'invalid' | 'cannot-check';

/** How to reach the backup key on a device that has nothing else. */
export type RecoverySecret = { recoveryKey: string } | { passphrase: string } | { trustedDevice: true };

/** Why there is no way into a backup, for `details.reason`: the error's own reason ('kb-changed'), else 'no-way-in'. */
function reasonOf(error: LatchkeyError): string {
  const reason = error.details?.reason;
  return typeof reason === 'string' ? reason : 'no-way-in';
}

/**
 * Storage keys a recovery key or passphrase may be (every one the secret is stored under but the
 * kB-derived key, which no person types), the default key first (core storageKeyCandidates).
 */
function recoveryCandidates(list: StorageKeyListBody, holders: Iterable<string>): string[] {
  return storageKeyCandidates(list.keys, list.default_key, holders).filter((id) => id !== KB_KEY_ID);
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
/** The background upload: the timer of the next run, and the run in flight (one at a time). */
interface BackgroundLoop {
  stopped: boolean;
  timer?: ReturnType<typeof setTimeout> | undefined;
  running: Promise<unknown>;
}

/** What the background upload tells as it goes, for a live status line (see {@link KeyBackup.start}). */
export interface BackgroundListener {
  /** A run's progress: first `done: 0` with the keys it is about to send, then after each batch. */
  onProgress?: ProgressListener;
  /** A run has ended well: every key pending when it began is uploaded (`uploaded` may be 0). */
  onUploaded?: (result: { uploaded: number; version: string }) => void;
}

export interface EnableOptions {
  /** Also derive the recovery key from this passphrase (PBKDF2), so either restores. */
  passphrase?: string;
  /** Let devices logged in with the password restore too (default true). */
  trustLoggedInDevices?: boolean;
  /**
   * Start a new backup even though one exists: its keys are first restored onto this device, then it
   * is deleted; otherwise an existing backup is `LK_BACKUP_EXISTS`.
   */
  replace?: boolean;
  /** When replacing: how to open the old backup to carry its keys over (default: the login). */
  carryOverWith?: RecoverySecret;
  /**
   * When replacing and the old backup cannot be opened that way (`LK_NO_RECOVERY_METHOD`): start over
   * anyway, losing the keys only it held. Without it, nothing is changed.
   */
  discardUnreadable?: boolean;
  /** Progress of carrying the old backup's keys over, when replacing. */
  onProgress?: ProgressListener;
  /**
   * The account password, needed when enabling replaces something on the server (see
   * {@link KeyBackup.enableReplaces}): deleting the old backup, or writing over the recovery-key
   * description, default key or backup secret an earlier backup (or a Matrix client) left in secret
   * storage, needs a recent password check (`LK_REAUTH_REQUIRED` otherwise). With it, the session
   * proves the password again after the carry-over, before anything on the server changes. Without
   * it, the session must have proved it within the last ten minutes (a login or
   * `Session.reauthenticate`). A first backup on an empty secret storage needs none.
   *
   * A function is called after the carry-over (which may take long) instead: its password is proved
   * as above, and undefined proves nothing, for a caller that knows its session's check is fresh.
   */
  password?: string | (() => Promise<string | undefined>);
}

/** Options of {@link KeyBackup.replaceRecoveryKey}. */
export interface ReplaceRecoveryKeyOptions {
  /** Also derive the new recovery key from this passphrase (PBKDF2), so either restores. */
  passphrase?: string;
  /**
   * The account password: the session proves it again first, since writing over the stored backup
   * secret and the recovery key's description needs a recent password check. Without it, a session
   * that has not proved it within ten minutes gets `LK_REAUTH_REQUIRED`, and nothing is changed.
   */
  password?: string;
}

/** Options of {@link KeyBackup.delete}. */
export interface DeleteBackupOptions {
  /**
   * The account password: the session proves it again first, since deleting needs a recent password
   * check. Without it, a session that has not proved it within ten minutes gets `LK_REAUTH_REQUIRED`.
   */
  password?: string;
}

export interface EnabledBackup {
  version: string;
  /** Show it once; the server never sees it. */
  recoveryKey: string;
  /** When a backup was replaced: its version, and how many of its keys this device now holds. */
  replaced?: { version: string; carriedOver: number; unreadable: number; total: number };
}

/** Waits for `repair`; a refusal for want of a recent password check only skips it. */
async function unlessReauthRequired(repair: Promise<void>): Promise<void> {
  try {
    await repair;
  } catch (error) {
    if (!(error instanceof LatchkeyError && error.code === 'LK_REAUTH_REQUIRED')) throw error;
  }
}

export class KeyBackup {
  private readonly secrets: SecretStorage;
  private loop: BackgroundLoop | undefined;
  /** The last run of a stopped loop: a new loop starts after it, never beside it. */
  private lastRun: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly request: AuthedRequest,
    private readonly accountId: string,
    private readonly kB: () => KB,
    private readonly keystore: LocalKeystore,
    private readonly crypto: MatrixCrypto,
    /** Proves the password again over the session (`Session.reauthenticate`), for deletes and overwrites. */
    private readonly reauthenticate: (password: string) => Promise<void>,
  ) {
    this.secrets = new SecretStorage(request, crypto);
  }

  private signingKey() {
    return deriveBackupSigningSeed(this.kB());
  }

  /**
   * The name our signature goes under in auth_data. Matrix signed JSON keys signatures by user ID, and
   * matrix-sdk-crypto parses every key of `signatures` as one: a bare account id there makes it refuse
   * the whole auth_data ("leading sigil is incorrect or missing"), so a Matrix client could not use the
   * backup. The `.invalid` server name (RFC 2606) says that no homeserver stands behind this signer.
   */
  private get signer(): string {
    return `@${this.accountId}:latchkey.invalid`;
  }

  /** auth_data signed as Matrix signed JSON (canonical JSON without `signatures`, Ed25519). */
  private signAuthData(publicKey: Uint8Array): BackupAuthDataBody {
    const unsigned = { public_key: toBase64(publicKey) };
    const signature = ed25519.sign(utf8(canonicalJson(unsigned)), this.signingKey());
    return { ...unsigned, signatures: { [this.signer]: { [SIGNING_KEY_ID]: toBase64(signature) } } };
  }

  /**
   * True when auth_data carries this account's valid signature (spec trust rule (a)): under our Matrix
   * signer name, or under the bare account id that earlier versions wrote (such a backup is signed
   * again under the new name at its next restore).
   */
  isTrusted(authData: BackupAuthDataBody): boolean {
    return this.signedBy(authData, this.signer) || this.signedBy(authData, this.accountId);
  }

  private signedBy(authData: BackupAuthDataBody, signer: string): boolean {
    const signatures = authData.signatures ?? {};
    const signature = Object.hasOwn(signatures, signer) ? signatures[signer]?.[SIGNING_KEY_ID] : undefined;
    if (typeof signature !== 'string') return false;
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
  async enable(options: EnableOptions = {}): Promise<EnabledBackup> {
    const existing = await this.current();
    if (existing !== undefined && options.replace !== true) {
      throw new LatchkeyError('LK_BACKUP_EXISTS', `Backup version ${existing.version} exists.`, {
        version: existing.version,
      });
    }
    // Replacing: first bring the old backup's keys onto this device, where the new one picks them up.
    const replaced =
      existing === undefined ? undefined : { version: existing.version, ...(await this.carryOver(existing, options)) };
    // Deleting the old backup and writing over secret storage both need a fresh password check: proved
    // here, before the first change, so a wrong password changes nothing.
    const password = typeof options.password === 'function' ? await options.password() : options.password;
    if (password !== undefined) await this.reauthenticate(password);
    const backupKey = randomBytes(32);
    let version: string;
    let recoveryKey: string;
    try {
      // Order matters: the private key is stored before the version that needs it exists. Interrupted
      // in between, no version takes keys under the new key (a replaced backup is still there, but its
      // key is no longer stored: enabling again finds it so and starts over); the other way round, keys
      // would be uploaded to a version whose private key was never saved.
      recoveryKey = await this.storeNewBackupKey(backupKey, options);
      ({ version } = await this.request<{ version: string }>('POST', '/v1/backup/version', {
        algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
        auth_data: this.signAuthData(this.crypto.x25519PublicKey(backupKey)),
      }));
    } finally {
      backupKey.fill(0);
    }
    if (existing !== undefined) {
      // Deleted last, once the new version is there: stopped at any point before, the account still
      // has a backup (the server keeps both versions meanwhile, the newest current), and this device
      // holds the old one's keys for the new one. Deleting needs a recent password check; the secret
      // storage writes above needed one too when they wrote over the old backup's key, so a session
      // that got this far has it. Should the delete fail anyway, the new backup stands: enabling
      // again (with replace) carries its keys over and deletes it in turn, leaving the old version,
      // no longer current, on the server.
      await this.request('DELETE', `/v1/backup/version/${encodeURIComponent(existing.version)}`);
    }
    return replaced === undefined ? { version, recoveryKey } : { version, recoveryKey, replaced };
  }

  /**
   * Whether {@link enable} would replace something on the server, so needs a recent password check (its
   * `password` option): a backup exists, or secret storage already holds the recovery key's or the
   * logged-in devices' key description, a default key, or a backup secret (an earlier backup, deleted
   * since, or a Matrix client's secret storage). A first backup on an empty account needs none.
   */
  async enableReplaces(): Promise<boolean> {
    if ((await this.current()) !== undefined) return true;
    const list = await this.secrets.keys();
    if (list.default_key !== null || Object.hasOwn(list.keys, RECOVERY_KEY_ID) || Object.hasOwn(list.keys, KB_KEY_ID))
      return true;
    return (await this.backupSecretIfAny()) !== undefined;
  }

  /**
   * The old backup's keys restored into this device's keystore before it is replaced. Keys that do not
   * decrypt are counted, not fatal. When there is no way in (through the login since a password reset,
   * or never granted), nothing goes on unless the caller chose to discard it: the person may still hold
   * the recovery key that opens it.
   */
  private async carryOver(existing: BackupVersionInfoBody, options: EnableOptions) {
    try {
      // Imported or already held (as well or better): either way, on this device now.
      const { failed, refused, total } = await this.restore(
        options.carryOverWith ?? { trustedDevice: true },
        options.onProgress,
      );
      // A refused key is not carried over: the new backup must not take in what the old one was given.
      return { carriedOver: total - failed - refused, unreadable: failed + refused, total };
    } catch (error) {
      if (!(error instanceof LatchkeyError)) throw error;
      const lost = { carriedOver: 0, unreadable: existing.count, total: existing.count };
      // The key in secret storage is not this version's: a replacement interrupted after it stored
      // its new key (its first try carried the keys over), or auth_data changed under us. Nothing
      // this account holds opens the old version any more, so there is nothing to keep by waiting.
      if (error.code === 'LK_BACKUP_KEY_MISMATCH') return lost;
      if (error.code !== 'LK_NO_RECOVERY_METHOD') throw error;
      if (options.discardUnreadable === true) return lost;
      throw new LatchkeyError(
        'LK_NO_RECOVERY_METHOD',
        `Backup version ${existing.version} (${existing.count} keys) cannot be opened ${options.carryOverWith === undefined ? 'through the login' : 'with that'}, ` +
          'so replacing it now would lose the keys only it holds. Give its recovery key or passphrase to keep them, ' +
          'or choose to discard them. Nothing was changed.',
        { version: existing.version, keys: existing.count, reason: reasonOf(error) },
      );
    }
  }

  /** Stores the backup private key in secret storage under a new recovery key (and the kB key); returns it encoded. */
  private async storeNewBackupKey(backupKey: Uint8Array, options: EnableOptions): Promise<string> {
    const { storageKey, description } = await this.newRecoveryStorageKey(options.passphrase);
    const holders = [{ keyId: RECOVERY_KEY_ID, key: storageKey }];
    try {
      await this.secrets.describeKey(RECOVERY_KEY_ID, storageKey, description);
      await this.secrets.setDefaultKey(RECOVERY_KEY_ID);
      if (options.trustLoggedInDevices !== false) {
        const kbKey = deriveSecretStorageKeyFromKB(this.kB());
        holders.push({ keyId: KB_KEY_ID, key: kbKey });
        await this.secrets.describeKey(KB_KEY_ID, kbKey, { name: 'Devices logged in to this account' });
      }
      await this.secrets.store(BACKUP_SECRET, utf8(toBase64(backupKey)), holders);
      return encodeRecoveryKey(storageKey);
    } finally {
      for (const holder of holders) holder.key.fill(0);
    }
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
   * Returns the new recovery key: show it once, the server never sees it. Writing over the stored
   * secret needs a recent password check: give `password`, or expect `LK_REAUTH_REQUIRED`.
   */
  async replaceRecoveryKey(options: ReplaceRecoveryKeyOptions = {}): Promise<{ version: string; recoveryKey: string }> {
    const info = await this.current();
    if (info === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
    // First, so the repairs unlocking may make (signing auth_data again) go through too.
    if (options.password !== undefined) await this.reauthenticate(options.password);
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
        // Matrix clients look for the secret under the default key: it must name the new one.
        if ((await this.secrets.keys()).default_key !== RECOVERY_KEY_ID)
          await this.secrets.setDefaultKey(RECOVERY_KEY_ID);
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
   * Whether `recoveryKey` is this account's current recovery key, checked against the key check of its
   * description; nothing is decrypted. `'cannot-check'` when a description it could be has no key check
   * (no `iv`/`mac`): the spec lets such a description accept every key, so a server that strips them
   * would otherwise pass any key (or fail the right one). A restore still checks the secret's own MAC.
   * A malformed key is `LK_BAD_RECOVERY_KEY` with `details.reason`; an account without a recovery key
   * is `LK_NO_RECOVERY_METHOD`.
   */
  async verifyRecoveryKey(recoveryKey: string): Promise<RecoveryKeyCheck> {
    const storageKey = decodeRecoveryKey(recoveryKey);
    try {
      const list = await this.secrets.keys();
      if (!Object.keys(list.keys).some((id) => id !== KB_KEY_ID)) {
        throw new LatchkeyError('LK_NO_RECOVERY_METHOD', 'This account has no recovery key: enable the backup first.');
      }
      const item = await this.backupSecretIfAny();
      // The keys the backup key is stored under (a Matrix client's have random ids), else the default.
      const holders =
        item !== undefined ? Object.keys(item.encrypted) : list.default_key === null ? [] : [list.default_key];
      const descriptions = recoveryCandidates(list, holders).map((id) => list.keys[id] as StorageKeyDescriptionBody);
      const checkable = descriptions.filter(hasKeyCheck);
      if (checkable.some((description) => checkStorageKey(this.crypto, storageKey, description))) return 'valid';
      return checkable.length < descriptions.length ? 'cannot-check' : 'invalid';
    } finally {
      storageKey.fill(0);
    }
  }

  /** The stored backup secret, or undefined when there is none. */
  private async backupSecretIfAny(): Promise<SecretItemBody | undefined> {
    try {
      return await this.secrets.fetch(BACKUP_SECRET);
    } catch (error) {
      if (error instanceof LatchkeyError && error.code === 'LK_SECRET_NOT_FOUND') return undefined;
      throw error;
    }
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
    if (!this.isTrusted(info.auth_data)) {
      throw new LatchkeyError(
        'LK_BACKUP_UNTRUSTED',
        "The backup is not signed by this account's current key (was the password reset since it was set " +
          'up?); nothing was uploaded. Restore once with the recovery key or passphrase to trust it again.',
      );
    }
    const publicKey = fromBase64(info.auth_data.public_key, 'public_key');
    const pending = await this.keystore.pendingBackup(info.version);
    const report = progressMeter('upload', onProgress);
    // The total before the first batch is acknowledged, so a bar shows the work as soon as it starts.
    if (pending.length > 0) report(0, pending.length);
    for (let i = 0; i < pending.length; i += MAX_BACKUP_BATCH) {
      const batch = pending.slice(i, i + MAX_BACKUP_BATCH);
      await this.request('PUT', `/v1/backup/keys?version=${info.version}`, {
        rooms: this.encryptBatch(publicKey, batch),
      });
      await this.keystore.markBackedUp(batch, info.version);
      report(i + batch.length, pending.length);
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

  /**
   * Uploads in the background until {@link stop}: now, then `intervalMs` after each run ends, so two
   * runs never overlap however slow one is (nor with the last run of a loop just stopped). Failures go
   * to `onError` and wait for the next turn; an `onError` (or `listener`) that throws does not end the
   * loop. `listener` hears each run's progress and its end, for an app that shows the upload live.
   */
  start(intervalMs = 10_000, onError?: (error: unknown) => void, listener: BackgroundListener = {}): void {
    if (this.loop !== undefined) return;
    const loop: BackgroundLoop = { stopped: false, running: Promise.resolve() };
    const guard =
      <A extends unknown[]>(callback: ((...args: A) => void) | undefined) =>
      (...args: A) => {
        try {
          callback?.(...args);
        } catch {
          // The listener's own failure is not the upload's: the loop goes on.
        }
      };
    const report = guard(onError);
    const uploaded = guard(listener.onUploaded);
    const onProgress = listener.onProgress === undefined ? undefined : guard(listener.onProgress);
    const run = (): Promise<void> =>
      this.uploadPending(onProgress)
        .then(uploaded, report)
        .then(() => {
          if (!loop.stopped) loop.timer = setTimeout(() => (loop.running = run()), intervalMs);
        });
    this.loop = loop;
    loop.running = this.lastRun.then(() => (loop.stopped ? undefined : run()));
  }

  /**
   * Stops the background loop; resolves once the run in flight, if any, has ended. Nothing of this
   * loop runs after; a `start()` from here on begins a new one (after that run).
   */
  async stop(): Promise<void> {
    const loop = this.loop;
    if (loop === undefined) return;
    this.loop = undefined;
    loop.stopped = true;
    clearTimeout(loop.timer);
    this.lastRun = loop.running;
    await loop.running;
  }

  /**
   * Recovers the backup private key from secret storage with a recovery key, a passphrase, or (on a
   * device logged in with the password) the kB-derived storage key, and checks it matches auth_data.
   */
  async unlock(secret: RecoverySecret, info: BackupVersionInfoBody): Promise<Uint8Array> {
    const list = await this.secrets.keys();
    const { keyId, storageKey, opened, item } = await this.openBackupSecret(secret, list);
    let backupKey: Uint8Array | undefined;
    try {
      try {
        backupKey = fromBase64(fromUtf8(opened), BACKUP_SECRET);
      } finally {
        opened.fill(0);
      }
      if (!constantTimeEqual(this.crypto.x25519PublicKey(backupKey), fromBase64(info.auth_data.public_key))) {
        throw new LatchkeyError('LK_BACKUP_KEY_MISMATCH');
      }
      // The secret opened under a key only this account holds, and it matches auth_data's public key:
      // that proves the backup is ours even when its signature does not check (kB, and with it the
      // signing key, changed in a password reset). Sign it again so uploads go on; so too a backup
      // signed only under the bare account id (earlier versions), which Matrix clients cannot parse.
      // Both repairs write over what is stored, which the server allows only after a recent password
      // check. Refused (LK_REAUTH_REQUIRED), each changed nothing (its first write is the refused one)
      // and the unlock still stands: the repair is made at the next unlock by a freshly logged-in session.
      if (!this.signedBy(info.auth_data, this.signer)) await unlessReauthRequired(this.signAgain(info, backupKey));
      if (keyId !== KB_KEY_ID)
        await unlessReauthRequired(this.renewLoggedInAccess(list.keys, { keyId, key: storageKey }, backupKey, item));
      const unlocked = backupKey;
      backupKey = undefined; // handed to the caller, who wipes it
      return unlocked;
    } finally {
      storageKey.fill(0);
      backupKey?.fill(0);
    }
  }

  /**
   * Opens the backup secret with the storage key `secret` stands for. A recovery key or passphrase may
   * be any storage key the secret is stored under, not only ours (`recovery`): a Matrix client keeps
   * its key under a random id that `m.secret_storage.default_key` names, and after a reset an older key
   * may still hold a copy. The default key is tried first; a key is used only if it passes its key
   * check (when it has one) and the secret's MAC.
   */
  private async openBackupSecret(
    secret: RecoverySecret,
    list: StorageKeyListBody,
  ): Promise<{ keyId: string; storageKey: Uint8Array; opened: Uint8Array; item: SecretItemBody }> {
    if ('recoveryKey' in secret) {
      const storageKey = decodeRecoveryKey(secret.recoveryKey);
      let item: SecretItemBody;
      let found: { keyId: string; storageKey: Uint8Array; opened: Uint8Array } | undefined;
      try {
        item = await this.secrets.fetch(BACKUP_SECRET);
        found = await this.firstThatOpens(
          item,
          list,
          recoveryCandidates(list, Object.keys(item.encrypted)),
          async () => storageKey,
        );
      } catch (error) {
        storageKey.fill(0);
        throw error;
      }
      if (found !== undefined) return { ...found, item };
      // Not a key the backup key is stored under. It may still be one of the account's storage keys
      // (one replaced by a newer recovery key, or another secret's): say so rather than "not ours".
      const described = Object.entries(list.keys).some(
        ([id, description]) =>
          id !== KB_KEY_ID && hasKeyCheck(description) && checkStorageKey(this.crypto, storageKey, description),
      );
      storageKey.fill(0);
      throw new LatchkeyError(
        'LK_BAD_RECOVERY_KEY',
        described
          ? "That is one of this account's storage keys, but the backup key is not stored under it (was it replaced?)."
          : 'That recovery key is well formed, but it is not the one for this backup.',
        { reason: described ? 'not-for-backup' : 'mismatch' },
      );
    }
    if ('passphrase' in secret) {
      const withPassphrase = (holders: Iterable<string>) =>
        recoveryCandidates(list, holders).filter((id) => list.keys[id]?.passphrase !== undefined);
      const item = await this.secrets.fetch(BACKUP_SECRET);
      const candidates = withPassphrase(Object.keys(item.encrypted));
      if (candidates.length === 0)
        throw new LatchkeyError('LK_NO_RECOVERY_METHOD', 'This backup has no passphrase; use the recovery key.');
      // One PBKDF2 run per distinct set of parameters (each is costly on purpose), and only as needed:
      // usually the default key's is the first and the last.
      const derived = new Map<string, Uint8Array>();
      const keyOf = async (id: string) => {
        const params = (list.keys[id] as StorageKeyDescriptionBody).passphrase as PassphraseInfo;
        const cacheKey = JSON.stringify([params.algorithm, params.salt, params.iterations, params.bits ?? 256]);
        let key = derived.get(cacheKey);
        if (key === undefined) {
          key = await deriveKeyFromPassphrase(this.crypto, secret.passphrase, params);
          derived.set(cacheKey, key);
        }
        return key;
      };
      let found: { keyId: string; storageKey: Uint8Array; opened: Uint8Array } | undefined;
      try {
        found = await this.firstThatOpens(item, list, candidates, keyOf);
      } finally {
        for (const key of derived.values()) if (key !== found?.storageKey) key.fill(0);
      }
      if (found === undefined) throw new LatchkeyError('LK_BAD_PASSPHRASE');
      return { ...found, item };
    }
    const description = list.keys[KB_KEY_ID];
    if (description === undefined)
      throw new LatchkeyError('LK_NO_RECOVERY_METHOD', 'Logged-in devices were not given access to this backup.');
    const storageKey = deriveSecretStorageKeyFromKB(this.kB());
    if (!checkStorageKey(this.crypto, storageKey, description)) {
      storageKey.fill(0);
      throw new LatchkeyError(
        'LK_NO_RECOVERY_METHOD',
        'The password was reset since this backup was set up, so a login no longer opens it. Restore once ' +
          'with the recovery key (or passphrase); then logged-in devices can again.',
        { reason: 'kb-changed' },
      );
    }
    try {
      const item = await this.secrets.fetch(BACKUP_SECRET);
      const opened = this.secrets.open(item, BACKUP_SECRET, KB_KEY_ID, storageKey);
      if (opened === undefined) throw new LatchkeyError('LK_NO_RECOVERY_METHOD');
      return { keyId: KB_KEY_ID, storageKey, opened, item };
    } catch (error) {
      storageKey.fill(0);
      throw error;
    }
  }

  /**
   * The first of `candidates` whose key (from `keyOf`) passes its key check and opens the secret. A key
   * that passes a real key check but fails the secret's MAC means the secret was stored again under a
   * new key with the same id (an interrupted recovery-key replacement): that is reported as
   * `LK_SECRET_DECRYPT_FAILED` if no other key opens it. A description without a key check accepts any
   * key (spec), so only the MAC tells; its failure just moves on.
   */
  private async firstThatOpens(
    item: SecretItemBody,
    list: StorageKeyListBody,
    candidates: string[],
    keyOf: (keyId: string) => Promise<Uint8Array>,
  ): Promise<{ keyId: string; storageKey: Uint8Array; opened: Uint8Array } | undefined> {
    let stale: LatchkeyError | undefined;
    for (const keyId of candidates) {
      const description = Object.hasOwn(list.keys, keyId) ? list.keys[keyId] : undefined;
      if (description === undefined) continue;
      const storageKey = await keyOf(keyId);
      if (!checkStorageKey(this.crypto, storageKey, description)) continue;
      try {
        const opened = this.secrets.open(item, BACKUP_SECRET, keyId, storageKey);
        if (opened !== undefined) return { keyId, storageKey, opened };
      } catch (error) {
        if (!(error instanceof LatchkeyError && error.code === 'LK_SECRET_DECRYPT_FAILED')) throw error;
        if (hasKeyCheck(description)) stale ??= error;
      }
    }
    if (stale !== undefined) throw stale;
    return undefined;
  }

  /** Replaces the version's auth_data with the same public key signed by this account's current key. */
  private async signAgain(info: BackupVersionInfoBody, backupKey: Uint8Array): Promise<void> {
    const version = encodeURIComponent(info.version);
    // Our signature is added to auth_data as it is (the caller checked its public key is this key's):
    // another signer's signature (a Matrix client's device or cross-signing key) covers the same
    // fields, so it stays valid, and that client goes on trusting the backup (spec trust rule (a)).
    const { signatures: signedBy = {}, ...fields } = { ...info.auth_data } as BackupAuthDataBody & {
      unsigned?: unknown;
    };
    delete fields.unsigned;
    // Under the bare account id (what earlier versions wrote), a signature breaks Matrix clients' parsing.
    const { [this.accountId]: _legacy, ...others } = signedBy;
    if (!constantTimeEqual(fromBase64(fields.public_key), this.crypto.x25519PublicKey(backupKey))) {
      throw new LatchkeyError('LK_BACKUP_KEY_MISMATCH');
    }
    const signature = ed25519.sign(utf8(canonicalJson(fields)), this.signingKey());
    await this.request('PUT', `/v1/backup/version/${version}`, {
      algorithm: info.algorithm,
      auth_data: {
        ...fields,
        signatures: {
          ...others,
          [this.signer]: { ...others[this.signer], [SIGNING_KEY_ID]: toBase64(signature) },
        },
      },
      version: info.version,
    });
  }

  /**
   * After a password reset kB is new, and the backup's copy for logged-in devices opens with nothing.
   * Once someone proves the recovery key (or passphrase), that copy is made again under the new kB, so
   * a login restores again. Nothing happens when the copy is current, or was never granted.
   */
  private async renewLoggedInAccess(
    keys: StorageKeyListBody['keys'],
    recovery: { keyId: string; key: Uint8Array },
    backupKey: Uint8Array,
    item: SecretItemBody,
  ): Promise<void> {
    const description = keys[KB_KEY_ID];
    if (description === undefined) return;
    const kbKey = deriveSecretStorageKeyFromKB(this.kB());
    try {
      if (checkStorageKey(this.crypto, kbKey, description)) return;
      // The secret first, the description (its key check) last: interrupted, the old check still
      // fails and the next recovery-key restore does this again. Copies under other keys (a Matrix
      // client's) are kept as they are.
      const { [KB_KEY_ID]: _stale, [recovery.keyId]: _renewed, ...others } = item.encrypted;
      await this.secrets.store(
        BACKUP_SECRET,
        utf8(toBase64(backupKey)),
        [recovery, { keyId: KB_KEY_ID, key: kbKey }],
        others,
      );
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
   * imported. Keys that do not decrypt are counted (`failed`), not fatal; so are keys refused because
   * they are filed under a room or session that is not their own (`refused`, with how many for each
   * reason in `refusals`). Every restored key is unverified, whatever the server says, and none
   * replaces a key already held unless it is the same session from an earlier message (keystore
   * importFromBackup).
   */
  async restore(secret: RecoverySecret, onProgress?: ProgressListener): Promise<RestoreResult> {
    const info = await this.current();
    if (info === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
    const backupKey = await this.unlock(secret, info);
    try {
      const report = progressMeter('import', onProgress);
      const refusals: Partial<Record<BackupRefusal, number>> = {};
      let imported = 0;
      let failed = 0;
      let refused = 0;
      let done = 0;
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? '' : `&cursor=${cursor}`;
        const page: BackupPage = await this.request<BackupPage>(
          'GET',
          `/v1/backup/keys?version=${info.version}&limit=5000${query}`,
        );
        const opened = this.openPage(backupKey, page);
        failed += opened.undecryptable;
        for (const reason of opened.refused) {
          refused++;
          refusals[reason] = (refusals[reason] ?? 0) + 1;
        }
        imported += await this.keystore.importFromBackup(opened.entries, info.version);
        done += page.keys.length;
        report(done, info.count);
        cursor = page.next_cursor;
      } while (cursor !== null);
      return { version: info.version, total: done, imported, failed, refused, refusals };
    } finally {
      backupKey.fill(0);
    }
  }

  /**
   * Decrypts one page of backed-up keys; those that do not decrypt or parse are counted, those filed
   * under another room or session are refused with their reason, neither is fatal. The server's
   * is_verified is not taken (it is unauthenticated); its forwarded_count only ever counts up, never
   * below the forwarding chain the key itself carries.
   */
  private openPage(backupKey: Uint8Array, page: BackupPage) {
    const entries: Array<{ key: RoomKey; meta: { forwardedCount: number } }> = [];
    const refused: BackupRefusal[] = [];
    let undecryptable = 0;
    for (const item of page.keys) {
      let json: unknown;
      try {
        json = JSON.parse(fromUtf8(decryptFromBackup(this.crypto, backupKey, item.session_data)));
      } catch {
        undecryptable++;
        continue;
      }
      // Anyone with the public key can encrypt any JSON: `null` or `3` is no key, and no reason to stop.
      if (typeof json !== 'object' || json === null || Array.isArray(json)) {
        undecryptable++;
        continue;
      }
      try {
        const key = roomKeyFromBackup(item.room_id, item.session_id, json as Record<string, unknown>);
        if (key === undefined) undecryptable++;
        else {
          const forwardedCount = Math.max(item.forwarded_count, key.forwarding_curve25519_key_chain.length);
          entries.push({ key, meta: { forwardedCount } });
        }
      } catch (error) {
        if (!(error instanceof LatchkeyError && error.code === 'LK_BACKUP_KEY_REFUSED')) throw error;
        refused.push(error.details?.reason as BackupRefusal);
      }
    }
    return { entries, refused, undecryptable };
  }

  /**
   * Deletes a backup version and its keys from the server: `version` when given (the one a person
   * confirmed, even if another device has since made a newer one current), else the current one.
   * The server wants a recent password check for it: give `password`, or expect `LK_REAUTH_REQUIRED`.
   */
  async delete(version?: string, options: DeleteBackupOptions = {}): Promise<void> {
    const target = version ?? (await this.current())?.version;
    if (target === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
    if (options.password !== undefined) await this.reauthenticate(options.password);
    await this.request('DELETE', `/v1/backup/version/${encodeURIComponent(target)}`);
  }
}
