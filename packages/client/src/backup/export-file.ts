import {
  DEFAULT_EXPORT_ROUNDS,
  decryptKeyExport,
  encryptKeyExport,
  fromUtf8,
  type RoomKey,
  roomKeyFromPlaintext,
  type SessionIdRefusal,
  sessionIdRefusal,
  utf8,
} from '@latchkey/core';
import { matrixCrypto } from '#platform';
import type { LocalKeystore } from '../keystore/keystore.js';
import { randomBytes } from '../random.js';
import { type KeyProgress, progressMeter } from './progress.js';

/** How many keys of a file {@link importRoomKeys} adds to the keystore at a time (one write each). */
const IMPORT_BATCH = 1000;

/**
 * Progress of writing or reading a key export file, in the same shape as the backup's so the same bar
 * shows it: `export` counts keys read from the keystore, `import` keys of the file handled (added,
 * already held, or unusable).
 */
export type KeyFileProgress = KeyProgress<'export' | 'import'>;

/** What {@link exportRoomKeys} and {@link importRoomKeys} report as they go. */
export interface KeyFileOptions {
  /** Keys done of total, rising, the last report at total; not called when there are no keys. */
  onProgress?: (progress: KeyFileProgress) => void;
  /**
   * Called once, just before the passphrase is stretched (PBKDF2, as many rounds as the file says)
   * and the file en- or decrypted: a wait of fixed length with nothing to count.
   */
  onStretch?: () => void;
}

/**
 * Passphrase-protected key export files (`-----BEGIN MEGOLM SESSION DATA-----`), readable by Element
 * and matrix-rust-sdk. Ephemeral keys are never exported: they are not in the persisted store.
 */
export async function exportRoomKeys(
  keystore: LocalKeystore,
  passphrase: string,
  rounds = DEFAULT_EXPORT_ROUNDS,
  options: KeyFileOptions = {},
) {
  const report = progressMeter('export', options.onProgress);
  const keys: RoomKey[] = (await keystore.persistedRoomKeys(report)).map((stored) => stored.key);
  options.onStretch?.();
  const text = await encryptKeyExport(matrixCrypto, utf8(JSON.stringify(keys)), passphrase, {
    salt: randomBytes(16),
    iv: randomBytes(16),
    rounds,
  });
  return { text, count: keys.length };
}

/** What {@link importRoomKeys} did: keys in the file, keys stored, and keys refused (and why), if any. */
export interface ImportResult {
  /** Every entry of the file. */
  total: number;
  /** Keys stored on this device (the rest were held already, as well or better, unusable, or refused). */
  imported: number;
  /** Keys labelled with a session id that is not their own: never imported. Present only when some were. */
  refused?: number;
  /** How many were refused for each reason (`LK_ROOM_KEY_REFUSED`'s `details.reason`). */
  refusals?: Partial<Record<SessionIdRefusal, number>>;
}

/**
 * Imports an export file; keys already held are kept unless the file's are better. The whole file is
 * decrypted and read before anything is written, so a wrong passphrase or a damaged file changes
 * nothing; then keys are added {@link IMPORT_BATCH} at a time, each batch written whole. A key
 * labelled with another session's id (the file's writer chose the label; the key names itself) is
 * refused and counted, as a restore counts the backup's misfiled keys.
 */
export async function importRoomKeys(
  keystore: LocalKeystore,
  fileText: string,
  passphrase: string,
  options: KeyFileOptions = {},
): Promise<ImportResult> {
  options.onStretch?.();
  const parsed = JSON.parse(fromUtf8(await decryptKeyExport(matrixCrypto, fileText, passphrase))) as unknown;
  const items: unknown[] = Array.isArray(parsed) ? parsed : [];
  const refusals: Partial<Record<SessionIdRefusal, number>> = {};
  let refused = 0;
  // null for an item that is not a usable key, or refused: it still counts toward the progress, as handled.
  const entries = items.map((item: unknown) => {
    if (typeof item !== 'object' || item === null) return null;
    const record = item as Record<string, unknown>;
    if (typeof record.room_id !== 'string' || typeof record.session_id !== 'string') return null;
    const key = roomKeyFromPlaintext(record.room_id, record.session_id, record);
    if (key === undefined) return null;
    const reason = sessionIdRefusal(key.session_id, key.session_key);
    if (reason === undefined) return { key };
    refused++;
    refusals[reason] = (refusals[reason] ?? 0) + 1;
    return null;
  });
  const report = progressMeter('import', options.onProgress);
  let imported = 0;
  for (let i = 0; i < entries.length; i += IMPORT_BATCH) {
    const batch = entries.slice(i, i + IMPORT_BATCH).filter((entry) => entry !== null);
    imported += await keystore.addRoomKeys(batch);
    report(Math.min(i + IMPORT_BATCH, entries.length), entries.length);
  }
  // Refusals are named only when there are some: an honest file has none.
  return refused === 0 ? { total: items.length, imported } : { total: items.length, imported, refused, refusals };
}
