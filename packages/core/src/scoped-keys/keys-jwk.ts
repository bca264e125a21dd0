import { p256 } from '@noble/curves/nist.js';
import { concatBytes, fromBase64Url, fromUtf8, toBase64Url, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';

/**
 * `keys_jwk`: the one-time public key an app sends with its authorization request, as base64url of a
 * JSON P-256 JWK (reference §0, §3.1). The consent page encrypts the app's scoped keys to it, so a key
 * that is not a sound public P-256 point would either fail late or, worse, leak: the checks here are
 * strict and each refusal has its own code.
 */

/** A validated public P-256 JWK, with only the members we pass on. */
export interface PublicP256Jwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  /** The app's key id, if it sent one; FxA copies it into the JWE header so node-jose finds the key. */
  kid?: string;
}

/** FxA's own limit on request parameters; a P-256 JWK with a modest kid is about 200 characters. */
export const KEYS_JWK_MAX_LENGTH = 1024;
const COORDINATE_LENGTH = 32;
const MAX_KID_LENGTH = 128;
const PRINTABLE = /^[\x20-\x7e]*$/;

/** Members that carry private or secret key material (RFC 7518 §6.2.2, §6.3.2, §6.4). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
/**
 * Members a public ECDH key may carry: the key itself, node-jose's `kid`, WebCrypto's `ext` and
 * `key_ops`, and `alg`/`use`. Anything else is refused rather than ignored: `jku`, `x5u` and `x5c`
 * make some libraries fetch or trust other keys, and an unknown member is not something we relay.
 */
const ALLOWED_MEMBERS = new Set(['kty', 'crv', 'x', 'y', 'kid', 'alg', 'use', 'key_ops', 'ext']);
const ALLOWED_KEY_OPS = new Set(['deriveKey', 'deriveBits']);

function refuse(code: 'LK_KEYS_JWK_MALFORMED' | 'LK_KEYS_JWK_UNSUPPORTED', reason: string): LatchkeyError {
  return new LatchkeyError(code, undefined, { reason });
}

function decodeObject(keysJwk: string): Record<string, unknown> {
  if (typeof keysJwk !== 'string' || keysJwk.length === 0 || keysJwk.length > KEYS_JWK_MAX_LENGTH) {
    throw refuse('LK_KEYS_JWK_MALFORMED', 'length');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(fromBase64Url(keysJwk, 'keys_jwk')));
  } catch {
    throw refuse('LK_KEYS_JWK_MALFORMED', 'not base64url of UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw refuse('LK_KEYS_JWK_MALFORMED', 'not a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function checkMembers(jwk: Record<string, unknown>): void {
  const names = Object.keys(jwk);
  const secret = names.find((name) => PRIVATE_MEMBERS.includes(name));
  if (secret !== undefined) throw new LatchkeyError('LK_KEYS_JWK_PRIVATE', undefined, { member: secret });
  const unknown = names.find((name) => !ALLOWED_MEMBERS.has(name));
  if (unknown !== undefined) throw refuse('LK_KEYS_JWK_UNSUPPORTED', `member ${unknown}`);
  if (jwk.kty !== 'EC') throw refuse('LK_KEYS_JWK_UNSUPPORTED', 'kty');
  if (jwk.crv !== 'P-256') throw refuse('LK_KEYS_JWK_UNSUPPORTED', 'crv');
}

/** The optional members must agree with a key used for ECDH-ES key agreement and nothing else. */
function checkUsage(jwk: Record<string, unknown>): void {
  if (jwk.alg !== undefined && jwk.alg !== 'ECDH-ES') throw refuse('LK_KEYS_JWK_UNSUPPORTED', 'alg');
  if (jwk.use !== undefined && jwk.use !== 'enc') throw refuse('LK_KEYS_JWK_UNSUPPORTED', 'use');
  if (jwk.ext !== undefined && typeof jwk.ext !== 'boolean') throw refuse('LK_KEYS_JWK_UNSUPPORTED', 'ext');
  const ops = jwk.key_ops;
  if (ops !== undefined) {
    // WebCrypto exports an ECDH public key with `key_ops: []` (public keys have no usages).
    const fits = Array.isArray(ops) && ops.every((op) => typeof op === 'string' && ALLOWED_KEY_OPS.has(op));
    if (!fits) throw refuse('LK_KEYS_JWK_UNSUPPORTED', 'key_ops');
  }
  const kid = jwk.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH || !PRINTABLE.test(kid))) {
    throw refuse('LK_KEYS_JWK_UNSUPPORTED', 'kid');
  }
}

function coordinate(value: unknown): Uint8Array {
  if (typeof value !== 'string') throw new LatchkeyError('LK_KEYS_JWK_BAD_POINT');
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(value);
  } catch {
    throw new LatchkeyError('LK_KEYS_JWK_BAD_POINT');
  }
  if (bytes.length !== COORDINATE_LENGTH) throw new LatchkeyError('LK_KEYS_JWK_BAD_POINT');
  return bytes;
}

/**
 * Decoding the uncompressed SEC1 form checks both coordinates are below p and the point is on the
 * curve, so no invalid-curve point reaches the ECDH (the attack node-jose guards against too).
 */
function checkPoint(x: Uint8Array, y: Uint8Array): void {
  try {
    p256.Point.fromBytes(concatBytes(Uint8Array.of(4), x, y)).assertValidity();
  } catch {
    throw new LatchkeyError('LK_KEYS_JWK_BAD_POINT');
  }
}

/**
 * Validates a `keys_jwk` parameter and returns its public key. Throws `LK_KEYS_JWK_MALFORMED` (not
 * base64url JSON of an object, or too long), `LK_KEYS_JWK_PRIVATE` (`d` or other secret members),
 * `LK_KEYS_JWK_UNSUPPORTED` (not EC P-256 for ECDH-ES, or an unexpected member) or
 * `LK_KEYS_JWK_BAD_POINT` (coordinates not 32 bytes, or not a point on P-256).
 */
export function parseKeysJwk(keysJwk: string): PublicP256Jwk {
  const jwk = decodeObject(keysJwk);
  checkMembers(jwk);
  checkUsage(jwk);
  checkPoint(coordinate(jwk.x), coordinate(jwk.y));
  const key: PublicP256Jwk = { kty: 'EC', crv: 'P-256', x: jwk.x as string, y: jwk.y as string };
  if (typeof jwk.kid === 'string') key.kid = jwk.kid;
  return key;
}

/** The `keys_jwk` parameter for a public key: base64url of its JSON, members sorted as FxA's vector has them. */
export function encodeKeysJwk(jwk: PublicP256Jwk): string {
  const sorted: Record<string, string> = {};
  for (const name of Object.keys(jwk).sort()) sorted[name] = jwk[name as keyof PublicP256Jwk] as string;
  return toBase64Url(utf8(JSON.stringify(sorted)));
}
