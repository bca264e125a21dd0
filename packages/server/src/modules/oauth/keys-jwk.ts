import { createPublicKey } from 'node:crypto';

/**
 * A server-side check of the two key-flow parameters (issue 9). The core package gets the full keys_jwk
 * / keys_jwe functions from another change; these validators are kept here, named for what they check,
 * so that merge can fold them into core.
 */

/** Firefox Accounts' limit on keys_jwe, and a generous bound on keys_jwk (a P-256 JWK is about 180). */
export const MAX_KEYS_JWE_LENGTH = 1024;
const MAX_KEYS_JWK_LENGTH = 512;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const COORDINATE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Why `keysJwk` is not base64url of a public P-256 JWK (no `d`, a point on the curve), or undefined
 * when it is one.
 */
export function keysJwkProblem(keysJwk: string): string | undefined {
  if (keysJwk.length > MAX_KEYS_JWK_LENGTH || !BASE64URL.test(keysJwk)) return 'keys_jwk is not short base64url';
  let jwk: unknown;
  try {
    jwk = JSON.parse(Buffer.from(keysJwk, 'base64url').toString('utf8'));
  } catch {
    return 'keys_jwk is not base64url of a JSON object';
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return 'keys_jwk is not a JSON object';
  const { kty, crv, x, y } = jwk as Record<string, unknown>;
  if ('d' in jwk) return 'keys_jwk carries a private key (d); send only the public half';
  if (kty !== 'EC' || crv !== 'P-256') return 'keys_jwk must be an EC P-256 key';
  if (typeof x !== 'string' || typeof y !== 'string' || !COORDINATE.test(x) || !COORDINATE.test(y)) {
    return 'keys_jwk x and y must be 32-byte base64url coordinates';
  }
  try {
    // Node refuses a point not on the curve: an invalid-curve key would leak the browser's ephemeral secret.
    createPublicKey({ key: { kty, crv, x, y }, format: 'jwk' });
  } catch {
    return 'keys_jwk is not a point on P-256';
  }
  return undefined;
}

/**
 * Why `keysJwe` is not a compact JWE for ECDH-ES + A256GCM within Firefox Accounts' 1,024 characters, or
 * undefined. The server cannot and does not open it; this only keeps what it relays to the promised shape.
 */
export function keysJweProblem(keysJwe: string): string | undefined {
  if (keysJwe.length > MAX_KEYS_JWE_LENGTH) return `keys_jwe is longer than ${MAX_KEYS_JWE_LENGTH} characters`;
  const parts = keysJwe.split('.');
  if (parts.length !== 5 || !parts.every((part) => BASE64URL.test(part))) return 'keys_jwe is not a compact JWE';
  try {
    const header = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (header.alg !== 'ECDH-ES' || header.enc !== 'A256GCM') return 'keys_jwe must be ECDH-ES with A256GCM';
  } catch {
    return 'keys_jwe has no readable protected header';
  }
  if (parts[1] !== '') return 'keys_jwe must have an empty encrypted key (ECDH-ES direct agreement)';
  return undefined;
}
