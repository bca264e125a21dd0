import { type MatrixCrypto, nobleMatrixCrypto } from '@latchkey/core';

/**
 * PBKDF2-SHA-512 through WebCrypto: a backup passphrase's 500,000 rounds take seconds in pure JS and a
 * fraction of one natively. The Matrix vectors pin it beside the other providers (matrix-formats.test.ts).
 */
async function pbkdf2Sha512(password: Uint8Array, salt: Uint8Array, iterations: number, length: number) {
  const key = await crypto.subtle.importKey('raw', Uint8Array.from(password), 'PBKDF2', false, ['deriveBits']);
  const parameters = { name: 'PBKDF2', hash: 'SHA-512', salt: Uint8Array.from(salt), iterations };
  return new Uint8Array(await crypto.subtle.deriveBits(parameters, key, length * 8));
}

/** {@link MatrixCrypto} for browsers: noble's curves and ciphers, WebCrypto's PBKDF2. */
export const webMatrixCrypto: MatrixCrypto = { ...nobleMatrixCrypto, pbkdf2Sha512 };
