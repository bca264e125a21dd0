import { constantTimeEqual } from '../crypto/primitives.js';
import { fromBase64, toBase64, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { aesCtr64, type MatrixCrypto } from './matrix-crypto.js';

/**
 * Secret storage, `m.secret_storage.v1.aes-hmac-sha2` (spec "Secrets" module):
 *
 *   aes key ‖ mac key = HKDF-SHA256(storage key, 32 zero bytes, info = secret name, 64)
 *   ciphertext = AES-256-CTR(aes key, iv, secret)   iv: 16 random bytes with bit 63 cleared
 *   mac = HMAC-SHA256(mac key, ciphertext)          (covers the ciphertext only)
 *
 * A key description may carry a key check: the same procedure over 32 zero bytes with an empty name.
 */
export const SECRET_STORAGE_ALGORITHM = 'm.secret_storage.v1.aes-hmac-sha2';

export interface EncryptedSecret {
  iv: string;
  ciphertext: string;
  mac: string;
}

export interface PassphraseInfo {
  algorithm: 'm.pbkdf2';
  salt: string;
  iterations: number;
  bits?: number;
}

/** A storage key's public description (`m.secret_storage.key.<id>`); never holds the key. */
export interface SecretStorageKeyDescription {
  name?: string;
  algorithm: typeof SECRET_STORAGE_ALGORITHM;
  passphrase?: PassphraseInfo;
  iv?: string;
  mac?: string;
}

const ZERO_SALT = new Uint8Array(32);
/** PBKDF2 rounds above this are refused: a hostile description must not stall a client for hours. */
export const MAX_PBKDF2_ITERATIONS = 10_000_000;

/** Clears bit 63 of the counter block so 64- and 128-bit CTR implementations agree (reference §4.3). */
export function clearBit63(iv: Uint8Array): Uint8Array {
  const out = iv.slice();
  out[8] = (out[8] as number) & 0x7f;
  return out;
}

function itemKeys(crypto: MatrixCrypto, key: Uint8Array, name: string) {
  const okm = crypto.hkdfSha256(key, ZERO_SALT, utf8(name), 64);
  return { aesKey: okm.subarray(0, 32), macKey: okm.subarray(32, 64) };
}

/** Encrypts bytes under a storage key for the secret `name`; `iv` is 16 random bytes (bit 63 is cleared here). */
export function encryptSecretBytes(
  crypto: MatrixCrypto,
  key: Uint8Array,
  name: string,
  secret: Uint8Array,
  iv: Uint8Array,
): EncryptedSecret {
  const counter = clearBit63(iv);
  const { aesKey, macKey } = itemKeys(crypto, key, name);
  const ciphertext = aesCtr64(crypto, aesKey, counter, secret);
  return {
    iv: toBase64(counter),
    ciphertext: toBase64(ciphertext),
    mac: toBase64(crypto.hmacSha256(macKey, ciphertext)),
  };
}

/** Decrypts a secret; a wrong key or tampering is `LK_SECRET_DECRYPT_FAILED` (the MAC is checked first). */
export function decryptSecretBytes(
  crypto: MatrixCrypto,
  key: Uint8Array,
  name: string,
  item: EncryptedSecret,
): Uint8Array {
  let iv: Uint8Array;
  let ciphertext: Uint8Array;
  let mac: Uint8Array;
  try {
    iv = fromBase64(item.iv, 'iv');
    ciphertext = fromBase64(item.ciphertext, 'ciphertext');
    mac = fromBase64(item.mac, 'mac');
  } catch {
    throw new LatchkeyError('LK_SECRET_DECRYPT_FAILED', 'The stored secret is not valid base64.');
  }
  if (iv.length !== 16) throw new LatchkeyError('LK_SECRET_DECRYPT_FAILED', 'The stored secret has a bad IV.');
  const { aesKey, macKey } = itemKeys(crypto, key, name);
  if (!constantTimeEqual(crypto.hmacSha256(macKey, ciphertext), mac)) {
    throw new LatchkeyError('LK_SECRET_DECRYPT_FAILED', 'The secret does not open with this key.');
  }
  return aesCtr64(crypto, aesKey, iv, ciphertext);
}

/** The key check stored in a key description: encrypt 32 zero bytes under the name "". */
export function makeKeyCheck(crypto: MatrixCrypto, key: Uint8Array, iv: Uint8Array): { iv: string; mac: string } {
  const { iv: ivText, mac } = encryptSecretBytes(crypto, key, '', new Uint8Array(32), iv);
  return { iv: ivText, mac };
}

/**
 * True when `key` matches the description's key check. A description without one accepts every key
 * (spec; rust `accepts_any_passphrase_if_mac_and_iv_are_missing`).
 */
export function checkStorageKey(
  crypto: MatrixCrypto,
  key: Uint8Array,
  description: SecretStorageKeyDescription,
): boolean {
  if (description.iv === undefined || description.mac === undefined) return true;
  let iv: Uint8Array;
  let mac: Uint8Array;
  try {
    iv = fromBase64(description.iv, 'iv');
    mac = fromBase64(description.mac, 'mac');
  } catch {
    return false;
  }
  if (iv.length !== 16) return false;
  const { macKey, aesKey } = itemKeys(crypto, key, '');
  const ciphertext = aesCtr64(crypto, aesKey, iv, new Uint8Array(32));
  return constantTimeEqual(crypto.hmacSha256(macKey, ciphertext), mac);
}

/** True when a key description carries a key check (`iv` and `mac`), so a key can be told right or wrong. */
export function hasKeyCheck(description: SecretStorageKeyDescription): boolean {
  return description.iv !== undefined && description.mac !== undefined;
}

/**
 * The storage keys to try for a secret, in order: only keys that are described and that the secret is
 * encrypted under, the default key first, then keys with a key check, then the rest, each group by id.
 * A client uses the default key unless told otherwise, but the key id is any string, and every key a
 * secret is encrypted under opens it (spec "Secret storage": `m.secret_storage.default_key`, "Storage").
 */
export function storageKeyCandidates(
  descriptions: Readonly<Record<string, SecretStorageKeyDescription>>,
  defaultKey: string | null,
  encryptedUnder: Iterable<string>,
): string[] {
  const held = new Set(encryptedUnder);
  const rank = (id: string) => {
    if (id === defaultKey) return 0;
    const description = descriptions[id];
    return description !== undefined && hasKeyCheck(description) ? 1 : 2;
  };
  return Object.keys(descriptions)
    .filter((id) => held.has(id))
    .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** The storage key from a passphrase: PBKDF2-HMAC-SHA-512 over the UTF-8 salt string (spec `m.pbkdf2`). */
export async function deriveKeyFromPassphrase(
  crypto: MatrixCrypto,
  passphrase: string,
  info: PassphraseInfo,
): Promise<Uint8Array> {
  const bits = info.bits ?? 256;
  // Descriptions come from the server as JSON: the types are checked, not assumed (a string "256"
  // would pass the arithmetic by coercion, a missing salt would silently be an empty one).
  if (info.algorithm !== 'm.pbkdf2' || !Number.isInteger(bits) || bits % 8 !== 0 || bits < 128 || bits > 512) {
    throw new LatchkeyError('LK_SECRET_STORAGE_UNSUPPORTED', 'Unsupported passphrase parameters.');
  }
  if (typeof info.salt !== 'string') {
    throw new LatchkeyError('LK_SECRET_STORAGE_UNSUPPORTED', 'The passphrase parameters have no salt.');
  }
  if (!Number.isInteger(info.iterations) || info.iterations < 1 || info.iterations > MAX_PBKDF2_ITERATIONS) {
    throw new LatchkeyError('LK_SECRET_STORAGE_UNSUPPORTED', `PBKDF2 iterations must be 1…${MAX_PBKDF2_ITERATIONS}.`);
  }
  return crypto.pbkdf2Sha512(utf8(passphrase), utf8(info.salt), info.iterations, bits / 8);
}
