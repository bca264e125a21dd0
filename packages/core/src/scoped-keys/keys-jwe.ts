import { CompactEncrypt, compactDecrypt, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { fromBase64Url, fromUtf8, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { checkScopeIdentifier, type ScopedKeyJwk } from './derive.js';
import { encodeKeysJwk, type PublicP256Jwk, parseKeysJwk } from './keys-jwk.js';

/**
 * `keys_jwe`: the app's scoped keys, encrypted in the user's browser to the app's `keys_jwk`, as a
 * compact JWE with ECDH-ES (direct key agreement, so the encrypted-key part is empty) and A256GCM;
 * the plaintext is `{<scope>: JWK}` (reference §3.3). The server only relays it, and checks its shape
 * and size with {@link checkKeysJwe}. Built on `jose`, which runs on WebCrypto in browsers and Node.
 */

/** FxA's server refuses longer keys_jwe (reference §3.3, validators.js `jwe … .max(1024)`). */
export const KEYS_JWE_MAX_LENGTH = 1024;
const ALG = 'ECDH-ES';
const ENC = 'A256GCM';
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const BASE64URL_PART = /^[A-Za-z0-9_-]*$/;
const KID = /^([0-9]+)-([A-Za-z0-9_-]+)$/;

/** The decrypted bundle: each requested scope's key, by scope. */
export type ScopedKeysBundle = Record<string, ScopedKeyJwk>;

function malformed(reason: string): LatchkeyError {
  return new LatchkeyError('LK_KEYS_JWE_MALFORMED', undefined, { reason });
}

function tooLarge(length: number): LatchkeyError {
  return new LatchkeyError('LK_KEYS_JWE_TOO_LARGE', undefined, { length, max: KEYS_JWE_MAX_LENGTH });
}

function bundleInvalid(reason: string): LatchkeyError {
  return new LatchkeyError('LK_SCOPED_KEYS_BUNDLE_INVALID', undefined, { reason });
}

function decodePart(part: string, name: string): Uint8Array {
  try {
    return fromBase64Url(part, name);
  } catch {
    throw malformed(`${name} is not base64url`);
  }
}

function checkHeader(encodedHeader: string): void {
  let header: unknown;
  try {
    header = JSON.parse(fromUtf8(decodePart(encodedHeader, 'header')));
  } catch {
    throw malformed('header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw malformed('header');
  const { alg, enc, epk, zip } = header as Record<string, unknown>;
  if (alg !== ALG || enc !== ENC) throw malformed('alg or enc');
  // A compression flag would make the relier inflate attacker-sized data; FxA never sets it.
  if (zip !== undefined) throw malformed('zip');
  const key = epk as Record<string, unknown> | undefined;
  if (typeof key !== 'object' || key === null || key.kty !== 'EC' || key.crv !== 'P-256') throw malformed('epk');
}

/**
 * Checks a `keys_jwe` without being able to read it: at most 1,024 characters (`LK_KEYS_JWE_TOO_LARGE`),
 * five base64url parts with an empty encrypted key, a protected header naming ECDH-ES, A256GCM and a
 * P-256 `epk`, a 12-byte IV and a 16-byte tag (`LK_KEYS_JWE_MALFORMED`). What the server runs before
 * it stores one.
 */
export function checkKeysJwe(keysJwe: string): void {
  if (typeof keysJwe !== 'string') throw malformed('not a string');
  if (keysJwe.length > KEYS_JWE_MAX_LENGTH) throw tooLarge(keysJwe.length);
  const parts = keysJwe.split('.');
  if (parts.length !== 5) throw malformed('not five parts');
  const [header, encryptedKey, iv, ciphertext, tag] = parts as [string, string, string, string, string];
  if (encryptedKey !== '') throw malformed('ECDH-ES has no encrypted key');
  if (!parts.every((part) => BASE64URL_PART.test(part))) throw malformed('not base64url');
  checkHeader(header);
  if (decodePart(iv, 'iv').length !== IV_LENGTH) throw malformed('iv length');
  if (decodePart(ciphertext, 'ciphertext').length === 0) throw malformed('empty ciphertext');
  if (decodePart(tag, 'tag').length !== TAG_LENGTH) throw malformed('tag length');
}

function bundleOf(keys: readonly ScopedKeyJwk[]): ScopedKeysBundle {
  if (keys.length === 0) throw bundleInvalid('no keys');
  // No prototype: a scope named like an Object.prototype member stays a plain entry.
  const bundle: ScopedKeysBundle = Object.create(null);
  for (const { kty, scope, k, kid } of keys) {
    checkScopeIdentifier(scope);
    if (Object.hasOwn(bundle, scope)) throw bundleInvalid(`scope ${scope} twice`);
    bundle[scope] = { kty, scope, k, kid };
  }
  return bundle;
}

/**
 * The consent side: encrypts `keys` (one per scope, from deriveScopedKey) to the app's `keys_jwk`.
 * The app's kid, if any, goes into the header as FxA puts it there. Refuses a bad `keys_jwk` with its
 * `LK_KEYS_JWK_*` code and a result over 1,024 characters with `LK_KEYS_JWE_TOO_LARGE`, as FxA's
 * server would refuse it later anyway.
 */
export async function encryptScopedKeys(keysJwk: string, keys: readonly ScopedKeyJwk[]): Promise<string> {
  const publicJwk = parseKeysJwk(keysJwk);
  const plaintext = utf8(JSON.stringify(bundleOf(keys)));
  try {
    const key = await importJWK({ kty: 'EC', crv: 'P-256', x: publicJwk.x, y: publicJwk.y }, ALG);
    const header = publicJwk.kid === undefined ? { alg: ALG, enc: ENC } : { alg: ALG, enc: ENC, kid: publicJwk.kid };
    const jwe = await new CompactEncrypt(plaintext).setProtectedHeader(header).encrypt(key);
    if (jwe.length > KEYS_JWE_MAX_LENGTH) throw tooLarge(jwe.length);
    return jwe;
  } finally {
    plaintext.fill(0);
  }
}

/**
 * The relier side, first step: the plaintext bytes of a `keys_jwe`, after {@link checkKeysJwe}.
 * `LK_KEYS_JWE_DECRYPT_FAILED` when it was not made for this key or was altered.
 */
export async function openKeysJwe(keysJwe: string, privateKey: CryptoKey | JWK): Promise<Uint8Array> {
  checkKeysJwe(keysJwe);
  try {
    const key = privateKey instanceof CryptoKey ? privateKey : await importJWK(privateKey, ALG);
    const { plaintext } = await compactDecrypt(keysJwe, key, {
      keyManagementAlgorithms: [ALG],
      contentEncryptionAlgorithms: [ENC],
    });
    return plaintext;
  } catch {
    throw new LatchkeyError('LK_KEYS_JWE_DECRYPT_FAILED');
  }
}

function isCanonicalBase64Url(text: unknown, lengths: readonly number[]): boolean {
  if (typeof text !== 'string') return false;
  try {
    return lengths.includes(fromBase64Url(text).length);
  } catch {
    return false;
  }
}

/**
 * One bundle entry as Firefox checks it (reference §2.5, validScopedKeys): `scope` equal to its key,
 * `kty` oct, `k` canonical base64url of 32 bytes (64 for legacy Sync), and a kid of a nonzero time,
 * a dash and a canonical base64url fingerprint.
 */
function checkEntry(scope: string, entry: unknown): ScopedKeyJwk {
  if (typeof entry !== 'object' || entry === null) throw bundleInvalid(`${scope} is not an object`);
  const { kty, scope: named, k, kid } = entry as Record<string, unknown>;
  if (named !== scope || kty !== 'oct') throw bundleInvalid(`${scope}: scope or kty`);
  if (!isCanonicalBase64Url(k, [32, 64])) throw bundleInvalid(`${scope}: k`);
  const match = typeof kid === 'string' ? KID.exec(kid) : null;
  if (match === null || Number(match[1]) === 0 || !isCanonicalBase64Url(match[2], [16])) {
    throw bundleInvalid(`${scope}: kid`);
  }
  return { kty, scope, k: k as string, kid: kid as string };
}

/**
 * The relier side: decrypts a `keys_jwe` and returns the keys of exactly `expectedScopes` (a scope
 * missing or one not asked for is `LK_SCOPED_KEYS_BUNDLE_INVALID`), each checked as Firefox checks them.
 */
export async function decryptScopedKeys(
  keysJwe: string,
  privateKey: CryptoKey | JWK,
  expectedScopes: readonly string[],
): Promise<ScopedKeysBundle> {
  const plaintext = await openKeysJwe(keysJwe, privateKey);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(plaintext));
  } catch {
    throw bundleInvalid('not JSON');
  } finally {
    plaintext.fill(0);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bundleInvalid('not an object');
  const scopes = Object.keys(parsed);
  const expected = new Set(expectedScopes);
  if (scopes.length !== expected.size || !scopes.every((scope) => expected.has(scope))) {
    throw bundleInvalid('not the scopes asked for');
  }
  const bundle: ScopedKeysBundle = Object.create(null);
  for (const scope of scopes) bundle[scope] = checkEntry(scope, (parsed as Record<string, unknown>)[scope]);
  return bundle;
}

/** A relier's one-time key pair: `keysJwk` to send, `privateKey` (not extractable) to keep for the reply. */
export interface KeysJwkPair {
  keysJwk: string;
  publicJwk: PublicP256Jwk;
  privateKey: CryptoKey;
}

/** Makes a fresh P-256 key pair for one authorization (WebCrypto's randomness). */
export async function createKeysJwkPair(): Promise<KeysJwkPair> {
  const { publicKey, privateKey } = await generateKeyPair(ALG, { crv: 'P-256' });
  const { x, y } = await exportJWK(publicKey);
  const publicJwk: PublicP256Jwk = { kty: 'EC', crv: 'P-256', x: x as string, y: y as string };
  return { keysJwk: encodeKeysJwk(publicJwk), publicJwk, privateKey };
}
