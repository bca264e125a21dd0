import { cbc, ctr } from '@noble/ciphers/aes.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { pbkdf2Async } from '@noble/hashes/pbkdf2.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';

/**
 * The primitives the Matrix formats need, behind one interface so each platform supplies its fastest:
 * node:crypto in Node (X25519 there is ~20x noble's), this pure-JS one anywhere. The per-key operations
 * are synchronous so bulk work runs without a promise per step; PBKDF2 is asynchronous (WebCrypto).
 */
export interface MatrixCrypto {
  /** RFC 7748 X25519; throws on an all-zero shared secret (a non-contributory public key). */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * A fresh ephemeral key pair agreed with `publicKey`: returns the ephemeral public key and the shared
   * secret, never the private key. Platforms generate it natively (importing raw private keys is slow).
   */
  x25519Ephemeral(publicKey: Uint8Array): { ephemeralPublicKey: Uint8Array; shared: Uint8Array };
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** AES-256-CBC with PKCS#7 padding; decrypt throws on bad padding. */
  aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array;
  aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array;
  /** AES-256-CTR with a full 128-bit big-endian counter (callers needing 64-bit wrap split the input). */
  aesCtr128(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array;
  pbkdf2Sha512(password: Uint8Array, salt: Uint8Array, iterations: number, length: number): Promise<Uint8Array>;
}

function assertContributory(shared: Uint8Array): Uint8Array {
  if (shared.every((b) => b === 0)) throw new Error('non-contributory X25519 public key');
  return shared;
}

/** The portable implementation over @noble (no platform APIs). */
export const nobleMatrixCrypto: MatrixCrypto = {
  x25519: (privateKey, publicKey) => assertContributory(x25519.getSharedSecret(privateKey, publicKey)),
  x25519PublicKey: (privateKey) => x25519.getPublicKey(privateKey),
  x25519Ephemeral(publicKey) {
    const { secretKey, publicKey: ephemeralPublicKey } = x25519.keygen();
    const shared = assertContributory(x25519.getSharedSecret(secretKey, publicKey));
    secretKey.fill(0);
    return { ephemeralPublicKey, shared };
  },
  hkdfSha256: (ikm, salt, info, length) => hkdf(sha256, ikm, salt, info, length),
  hmacSha256: (key, data) => hmac(sha256, key, data),
  aesCbcEncrypt: (key, iv, plaintext) => cbc(key, iv).encrypt(plaintext),
  aesCbcDecrypt: (key, iv, ciphertext) => cbc(key, iv).decrypt(ciphertext),
  aesCtr128: (key, iv, data) => ctr(key, iv).encrypt(data),
  pbkdf2Sha512: (password, salt, iterations, length) =>
    pbkdf2Async(sha512, password, salt, { c: iterations, dkLen: length }),
};

/**
 * AES-256-CTR with WebCrypto's `length: 64` semantics, as Element Web encrypts key exports: only the
 * low 64 bits of the counter block increment, wrapping without carry (reference §4.3). It agrees with
 * a 128-bit counter until the low half wraps, so the input is split at that point.
 */
export function aesCtr64(crypto: MatrixCrypto, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const view = new DataView(iv.buffer, iv.byteOffset, 16);
  const low = view.getBigUint64(8);
  const blocksUntilWrap = (1n << 64n) - low;
  const blocks = BigInt(Math.ceil(data.length / 16));
  if (blocks <= blocksUntilWrap) return crypto.aesCtr128(key, iv, data);
  const splitAt = Number(blocksUntilWrap) * 16;
  const wrappedIv = iv.slice();
  new DataView(wrappedIv.buffer).setBigUint64(8, 0n);
  const out = new Uint8Array(data.length);
  out.set(crypto.aesCtr128(key, iv, data.subarray(0, splitAt)), 0);
  out.set(crypto.aesCtr128(key, wrappedIv, data.subarray(splitAt)), splitAt);
  return out;
}
