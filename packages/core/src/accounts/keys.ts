import type { ExportKey, KA, KB, MasterKey, SessionKey } from '../brand.js';
import { ENVELOPE_NONCE_LENGTH, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { hkdfSha256, hmacSha256, sha256Digest } from '../crypto/primitives.js';
import { concatBytes, utf8 } from '../encoding.js';

/**
 * The account key schedule: the FxA key model (kA, kB, wrapKB) with OPAQUE in place of onepw.
 * Every info string is ours and namespaced, so no key here equals a key some other protocol derives
 * from the same input. Vectors: packages/core/vectors/account-keys.json.
 */
export const INFO = {
  wrapKB: 'latchkey/v1/wrapKB',
  session: 'latchkey/v1/session',
  keysBundle: 'latchkey/v1/keys-bundle',
  atRestPrefix: 'latchkey/v1/at-rest/',
  codeMac: 'latchkey/v1/code-mac',
  localStore: 'latchkey/v1/local-store',
  localStoreCheck: 'latchkey/v1/local-store-check',
  secretStorageFromKB: 'latchkey/v1/secret-storage-kb',
  backupSigning: 'latchkey/v1/backup-signing',
  fakeCredential: 'latchkey/v1/fake-credential-identifier',
} as const;

export const KEY_LENGTH = 32;
const EMPTY = new Uint8Array(0);

/** The AEAD key that wraps kB, from the OPAQUE export key (HKDF-SHA256, info `latchkey/v1/wrapKB`). */
export function deriveWrapKBKey(exportKey: ExportKey): Uint8Array {
  return hkdfSha256(exportKey, EMPTY, INFO.wrapKB, KEY_LENGTH);
}

/** wrapKB = envelope(kB) under {@link deriveWrapKBKey}; what the server stores in place of kB. */
export function wrapKB(kB: KB, exportKey: ExportKey, nonce: Uint8Array): Uint8Array {
  return sealEnvelope(deriveWrapKBKey(exportKey), kB, utf8(INFO.wrapKB), nonce);
}

/** Recovers kB; raises `LK_KEY_UNWRAP_FAILED` when the export key is not the one that wrapped it. */
export function unwrapKB(wrapped: Uint8Array, exportKey: ExportKey): KB {
  return openEnvelope(deriveWrapKBKey(exportKey), wrapped, utf8(INFO.wrapKB)) as KB;
}

/** The length of a wrapKB envelope, which the server checks without being able to open it. */
export const WRAPPED_KB_LENGTH = 1 + ENVELOPE_NONCE_LENGTH + KEY_LENGTH + 16;

/** What both ends of one OPAQUE login derive from its session key. */
export interface SessionSecrets {
  /** The bearer token of the session; the server stores only its SHA-256. */
  token: Uint8Array;
  /** The key that seals this login's keys bundle (kA and wrapKB) for the trip to the client. */
  bundleKey: Uint8Array;
}

/**
 * Session secrets from the OPAQUE session key (HKDF-SHA256, info `latchkey/v1/session`, 64 bytes).
 * The token never crosses the wire at login: both sides compute it, which also binds the session to
 * a completed key exchange.
 */
export function deriveSessionSecrets(sessionKey: SessionKey): SessionSecrets {
  const okm = hkdfSha256(sessionKey, EMPTY, INFO.session, 2 * KEY_LENGTH);
  return { token: okm.slice(0, KEY_LENGTH), bundleKey: okm.slice(KEY_LENGTH) };
}

/** The at-rest digest of a bearer token (SHA-256); tokens are 32 random-looking bytes, so no salt is needed. */
export function hashToken(token: Uint8Array): Uint8Array {
  return sha256Digest(token);
}

/** Seals kA ‖ wrapKB for the client under the login's bundle key, so kA is never in clear on the wire. */
export function sealKeysBundle(bundleKey: Uint8Array, kA: KA, wrapped: Uint8Array, nonce: Uint8Array): Uint8Array {
  return sealEnvelope(bundleKey, concatBytes(kA, wrapped), utf8(INFO.keysBundle), nonce);
}

/** Opens a keys bundle into kA and the still-wrapped kB. */
export function openKeysBundle(bundleKey: Uint8Array, bundle: Uint8Array): { kA: KA; wrappedKB: Uint8Array } {
  const plain = openEnvelope(bundleKey, bundle, utf8(INFO.keysBundle));
  return { kA: plain.slice(0, KEY_LENGTH) as KA, wrappedKB: plain.slice(KEY_LENGTH) };
}

/**
 * Seals a server-held secret at rest under a key derived from the master key for one purpose, bound
 * to the row it belongs to (`rowId`), so a sealed value copied to another row or column fails to open.
 */
export function sealAtRest(
  masterKey: MasterKey,
  purpose: string,
  rowId: string,
  plaintext: Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  return sealEnvelope(atRestKey(masterKey, purpose), plaintext, atRestAad(purpose, rowId), nonce);
}

/** Inverse of {@link sealAtRest}. */
export function openAtRest(masterKey: MasterKey, purpose: string, rowId: string, sealed: Uint8Array): Uint8Array {
  return openEnvelope(atRestKey(masterKey, purpose), sealed, atRestAad(purpose, rowId));
}

function atRestKey(masterKey: MasterKey, purpose: string): Uint8Array {
  return hkdfSha256(masterKey, EMPTY, INFO.atRestPrefix + purpose, KEY_LENGTH);
}

function atRestAad(purpose: string, rowId: string): Uint8Array {
  return utf8(`${purpose}\u0000${rowId}`);
}

/** What a one-time code is for, and the one account it was mailed for. */
export interface CodeBinding {
  purpose: string;
  email: string;
  /** The account the code was mailed for: no other account on the same email can use it. */
  accountId: string;
}

/**
 * The stored form of a short one-time code: HMAC under a master-derived key, so a stolen database
 * alone does not let anyone try all 10^8 codes offline. The MAC covers the account id as well as the
 * purpose and email (issue 8): an unverified account is replaced by a new sign-up for its email, and a
 * code mailed for the replaced account must not verify (or reset) the one that replaced it. No field
 * holds a NUL (purposes are ours, emails refuse controls, ids are base64url), so the input splits one way.
 */
export function macCode(masterKey: MasterKey, binding: CodeBinding, code: string): Uint8Array {
  const key = hkdfSha256(masterKey, EMPTY, INFO.codeMac, KEY_LENGTH);
  return hmacSha256(key, utf8(`${binding.purpose}\u0000${binding.email}\u0000${binding.accountId}\u0000${code}`));
}

/** The keys of a device's local keystore: one seals records, one turns record names into opaque ids. */
export interface LocalStoreKeys {
  sealKey: Uint8Array;
  idKey: Uint8Array;
}

/**
 * Local keystore keys from kB and the device id (HKDF-SHA256, salt = device id, info
 * `latchkey/v1/local-store`). Without kB, which only a login brings back, a stolen logged-out device
 * holds ciphertext under opaque ids and nothing to open them with.
 */
export function deriveLocalStoreKeys(kB: KB, deviceId: string): LocalStoreKeys {
  const okm = hkdfSha256(kB, utf8(deviceId), INFO.localStore, 2 * KEY_LENGTH);
  return { sealKey: okm.slice(0, KEY_LENGTH), idKey: okm.slice(KEY_LENGTH) };
}

/**
 * A value a keystore keeps in clear to tell, on opening, whether these are the keys it was sealed
 * under (after a password reset kB is new, and the old records open with nothing): HMAC-SHA256 under
 * the id key of `latchkey/v1/local-store-check`. Record ids are MACs of names holding a NUL, which this
 * input lacks, so the check never equals a record id.
 */
export function localStoreKeyCheck(keys: LocalStoreKeys): Uint8Array {
  return hmacSha256(keys.idKey, utf8(INFO.localStoreCheck));
}

/**
 * A secret-storage key every device that knows kB can compute (info `latchkey/v1/secret-storage-kb`):
 * the "trusted device" recovery path, by which a password login opens the backup key.
 */
export function deriveSecretStorageKeyFromKB(kB: KB): Uint8Array {
  return hkdfSha256(kB, EMPTY, INFO.secretStorageFromKB, KEY_LENGTH);
}

/** The Ed25519 seed that signs backup auth_data, shared by every device that knows kB. */
export function deriveBackupSigningSeed(kB: KB): Uint8Array {
  return hkdfSha256(kB, EMPTY, INFO.backupSigning, KEY_LENGTH);
}
