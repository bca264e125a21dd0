/** Cryptographically secure random bytes from WebCrypto (Node 20 and browsers alike). */
export function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}
