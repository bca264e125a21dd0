import {
  DEFAULT_EXPORT_ROUNDS,
  decryptKeyExport,
  encryptKeyExport,
  fromUtf8,
  type RoomKey,
  roomKeyFromPlaintext,
  utf8,
} from '@latchkey/core';
import { matrixCrypto } from '#platform';
import type { LocalKeystore } from '../keystore/keystore.js';
import { randomBytes } from '../random.js';

/**
 * Passphrase-protected key export files (`-----BEGIN MEGOLM SESSION DATA-----`), readable by Element
 * and matrix-rust-sdk. Ephemeral keys are never exported: they are not in the persisted store.
 */
export async function exportRoomKeys(keystore: LocalKeystore, passphrase: string, rounds = DEFAULT_EXPORT_ROUNDS) {
  const keys: RoomKey[] = (await keystore.persistedRoomKeys()).map((stored) => stored.key);
  const text = await encryptKeyExport(matrixCrypto, utf8(JSON.stringify(keys)), passphrase, {
    salt: randomBytes(16),
    iv: randomBytes(16),
    rounds,
  });
  return { text, count: keys.length };
}

/** Imports an export file; keys already held are kept unless the file's are better. */
export async function importRoomKeys(keystore: LocalKeystore, fileText: string, passphrase: string) {
  const parsed = JSON.parse(fromUtf8(await decryptKeyExport(matrixCrypto, fileText, passphrase))) as unknown;
  const entries = (Array.isArray(parsed) ? parsed : []).flatMap((item: unknown) => {
    if (typeof item !== 'object' || item === null) return [];
    const record = item as Record<string, unknown>;
    if (typeof record.room_id !== 'string' || typeof record.session_id !== 'string') return [];
    const key = roomKeyFromPlaintext(record.room_id, record.session_id, record);
    return key === undefined ? [] : [{ key }];
  });
  const imported = await keystore.addRoomKeys(entries);
  return { total: Array.isArray(parsed) ? parsed.length : 0, imported };
}
