import { concatBytes } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { nodeAead } from './node-aead.js';
import { aesGcmDecrypt, aesGcmEncrypt } from './primitives.js';

/**
 * Our one AEAD envelope, versioned so it carries its own parameters (conventions §10):
 *
 *   version (1 byte, 0x01 = AES-256-GCM) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)
 *
 * The associated data names what the envelope holds (and, where it matters, whose it is), so an
 * envelope cannot be moved into another slot and still open.
 */
export const ENVELOPE_V1 = 0x01;
export const ENVELOPE_NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
export const ENVELOPE_OVERHEAD = 1 + ENVELOPE_NONCE_LENGTH + TAG_LENGTH;

/** AES-256-GCM as a platform provides it (noble everywhere; node:crypto is ~10x faster in Node). */
export interface Aead {
  encrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** Throws when the tag does not verify. */
  decrypt(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array;
}

export const nobleAead: Aead = { encrypt: aesGcmEncrypt, decrypt: aesGcmDecrypt };

/** node:crypto's AES-GCM in Node, noble's elsewhere; both are pinned by the envelope vectors. */
export const defaultAead: Aead = nodeAead ?? nobleAead;

/** Seals `plaintext` under a 32-byte key; `nonce` must be 12 fresh random bytes, never reused with the key. */
export function sealEnvelope(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  nonce: Uint8Array,
  aead: Aead = defaultAead,
): Uint8Array {
  if (key.length !== 32) throw new RangeError('envelope key must be 32 bytes');
  if (nonce.length !== ENVELOPE_NONCE_LENGTH) throw new RangeError('envelope nonce must be 12 bytes');
  return concatBytes(Uint8Array.of(ENVELOPE_V1), nonce, aead.encrypt(key, nonce, plaintext, aad));
}

/**
 * Opens an envelope. A malformed envelope raises `LK_WRAPPED_KEY_INVALID`; one that is well formed
 * but does not authenticate (wrong key, wrong slot, tampered) raises `LK_KEY_UNWRAP_FAILED`.
 */
export function openEnvelope(
  key: Uint8Array,
  envelope: Uint8Array,
  aad: Uint8Array,
  aead: Aead = defaultAead,
): Uint8Array {
  if (!isWellFormedEnvelope(envelope)) throw new LatchkeyError('LK_WRAPPED_KEY_INVALID');
  const nonce = envelope.subarray(1, 1 + ENVELOPE_NONCE_LENGTH);
  try {
    return aead.decrypt(key, nonce, envelope.subarray(1 + ENVELOPE_NONCE_LENGTH), aad);
  } catch {
    throw new LatchkeyError('LK_KEY_UNWRAP_FAILED');
  }
}

/** A structural check the server can make without the key: right version, long enough. */
export function isWellFormedEnvelope(envelope: Uint8Array, plaintextLength?: number): boolean {
  if (envelope.length < ENVELOPE_OVERHEAD || envelope[0] !== ENVELOPE_V1) return false;
  return plaintextLength === undefined || envelope.length === ENVELOPE_OVERHEAD + plaintextLength;
}
