import { gcm } from '@noble/ciphers/aes.js';
import { ristretto255 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../encoding.js';

/** HKDF-SHA256 (RFC 5869) with a UTF-8 info string; an empty salt means RFC 5869 §2.2's zero salt. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: string, length: number): Uint8Array {
  return hkdf(sha256, ikm, salt, utf8(info), length);
}

export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmac(sha256, key, message);
}

export function sha256Digest(message: Uint8Array): Uint8Array {
  return sha256(message);
}

/** AES-256-GCM (NIST SP 800-38D) returning ciphertext ‖ 16-byte tag. */
export function aesGcmEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return gcm(key, nonce, aad).encrypt(plaintext);
}

/** Inverse of {@link aesGcmEncrypt}; throws (without detail) when the tag does not verify. */
export function aesGcmDecrypt(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  return gcm(key, nonce, aad).decrypt(sealed);
}

/**
 * Compares two byte strings in time that depends only on their lengths, so a secret's value cannot
 * be learned from how long a mismatch takes to be found.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/** Overwrites a secret buffer with zeros; best effort, as JavaScript may hold copies we cannot reach. */
export function wipe(...buffers: Uint8Array[]): void {
  for (const buffer of buffers) buffer.fill(0);
}

/**
 * True when `bytes` is the canonical encoding of a ristretto255 element other than the identity
 * (RFC 9496 §4.3.1 decoding; RFC 9497 §2.1 has deserialization reject the identity). Lets the server
 * refuse an OPAQUE record whose public key no login could ever use.
 */
export function isRistretto255Element(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false;
  try {
    return !ristretto255.Point.fromBytes(bytes).is0();
  } catch {
    return false;
  }
}
