import { constantTimeEqual } from '../crypto/primitives.js';
import { fromBase64, toBase64 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import type { MatrixCrypto } from './matrix-crypto.js';

/**
 * `m.megolm_backup.v1.curve25519-aes-sha2` (spec "Server-side key backups"; vodozemac
 * `pk_encryption.rs`), byte-compatible with libolm, vodozemac and matrix-sdk-crypto-wasm:
 *
 *   shared = X25519(ephemeral, backup key); okm = HKDF-SHA256(shared, zero salt, "", 80)
 *   aes key ‖ mac key ‖ iv = okm; ciphertext = AES-256-CBC-PKCS7(plaintext)
 *   mac = HMAC-SHA256(mac key, "")[0:8]   ← the libolm bug the spec keeps: the MAC covers nothing
 *
 * Because the MAC authenticates nothing, integrity comes from elsewhere (signed auth_data, and the
 * JSON having to parse); this module reproduces the format exactly and says so.
 */
export const MEGOLM_BACKUP_ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';

export interface BackupSessionData {
  ephemeral: string;
  ciphertext: string;
  mac: string;
}

const ZERO_SALT = new Uint8Array(32);
const EMPTY = new Uint8Array(0);
const MAC_LENGTH = 8;

function deriveKeys(crypto: MatrixCrypto, shared: Uint8Array) {
  const okm = crypto.hkdfSha256(shared, ZERO_SALT, EMPTY, 80);
  return { aesKey: okm.subarray(0, 32), macKey: okm.subarray(32, 64), iv: okm.subarray(64, 80) };
}

/**
 * Encrypts one session's JSON to the backup public key. The ephemeral key is fresh from the platform,
 * or, for byte-exact vectors, the given 32-byte private key.
 */
export function encryptForBackup(
  crypto: MatrixCrypto,
  backupPublicKey: Uint8Array,
  plaintext: Uint8Array,
  ephemeralPrivateKey?: Uint8Array,
): BackupSessionData {
  const { ephemeralPublicKey, shared } =
    ephemeralPrivateKey === undefined
      ? crypto.x25519Ephemeral(backupPublicKey)
      : {
          ephemeralPublicKey: crypto.x25519PublicKey(ephemeralPrivateKey),
          shared: crypto.x25519(ephemeralPrivateKey, backupPublicKey),
        };
  const { aesKey, macKey, iv } = deriveKeys(crypto, shared);
  return {
    ciphertext: toBase64(crypto.aesCbcEncrypt(aesKey, iv, plaintext)),
    mac: toBase64(crypto.hmacSha256(macKey, EMPTY).subarray(0, MAC_LENGTH)),
    ephemeral: toBase64(ephemeralPublicKey),
  };
}

/**
 * Decrypts one backed-up session with the backup private key. Like vodozemac, the MAC may be any
 * length from 1 to 32 bytes and must equal that prefix of the full HMAC; base64 may be padded or not
 * but must be canonical. Every failure is `LK_BACKUP_DECRYPT_FAILED` (wrong key, corrupt data).
 */
export function decryptFromBackup(
  crypto: MatrixCrypto,
  backupPrivateKey: Uint8Array,
  data: BackupSessionData,
): Uint8Array {
  const fail = (why: string): never => {
    throw new LatchkeyError('LK_BACKUP_DECRYPT_FAILED', `Backed-up key does not decrypt: ${why}.`);
  };
  let ephemeral: Uint8Array;
  let mac: Uint8Array;
  let ciphertext: Uint8Array;
  try {
    ephemeral = fromBase64(data.ephemeral, 'ephemeral');
    mac = fromBase64(data.mac, 'mac');
    ciphertext = fromBase64(data.ciphertext, 'ciphertext');
  } catch {
    return fail('malformed base64');
  }
  if (ephemeral.length !== 32) return fail('the ephemeral key is not 32 bytes');
  if (mac.length < 1 || mac.length > 32) return fail('the MAC length is out of range');
  if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) return fail('the ciphertext length is not whole blocks');
  let shared: Uint8Array;
  try {
    shared = crypto.x25519(backupPrivateKey, ephemeral);
  } catch {
    return fail('the ephemeral key is not a usable curve point');
  }
  const { aesKey, macKey, iv } = deriveKeys(crypto, shared);
  const expected = crypto.hmacSha256(macKey, EMPTY).subarray(0, mac.length);
  if (!constantTimeEqual(expected, mac)) return fail('the MAC does not match (wrong backup key?)');
  try {
    return crypto.aesCbcDecrypt(aesKey, iv, ciphertext);
  } catch {
    return fail('bad padding');
  }
}
