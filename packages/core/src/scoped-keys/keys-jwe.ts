import { CompactEncrypt, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { aesGcmDecrypt, sha256Digest, wipe } from '../crypto/primitives.js';
import { concatBytes, fromBase64Url, fromUtf8, utf8 } from '../encoding.js';
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

/** The protected header's members the relier needs, once checked. */
interface KeysJweHeader {
  epk: { x: string; y: string };
  apu?: string;
  apv?: string;
}

function checkHeader(encodedHeader: string): KeysJweHeader {
  let header: unknown;
  try {
    header = JSON.parse(fromUtf8(decodePart(encodedHeader, 'header')));
  } catch {
    throw malformed('header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw malformed('header');
  const { alg, enc, epk, zip, crit, apu, apv } = header as Record<string, unknown>;
  if (alg !== ALG || enc !== ENC) throw malformed('alg or enc');
  // A compression flag would make the relier inflate attacker-sized data; FxA never sets it.
  if (zip !== undefined) throw malformed('zip');
  // RFC 7516 §4.1.13: a critical extension the reader does not know must be refused; we know none.
  if (crit !== undefined) throw malformed('crit');
  const key = epk as Record<string, unknown> | undefined;
  if (typeof key !== 'object' || key === null || key.kty !== 'EC' || key.crv !== 'P-256') throw malformed('epk');
  if (typeof key.x !== 'string' || typeof key.y !== 'string') throw malformed('epk');
  if ((apu !== undefined && typeof apu !== 'string') || (apv !== undefined && typeof apv !== 'string')) {
    throw malformed('apu or apv');
  }
  return {
    epk: { x: key.x, y: key.y },
    ...(apu === undefined ? {} : { apu: apu as string }),
    ...(apv === undefined ? {} : { apv: apv as string }),
  };
}

/**
 * Checks a `keys_jwe` without being able to read it: at most 1,024 characters (`LK_KEYS_JWE_TOO_LARGE`),
 * five base64url parts with an empty encrypted key, a protected header naming ECDH-ES, A256GCM and a
 * P-256 `epk`, a 12-byte IV and a 16-byte tag (`LK_KEYS_JWE_MALFORMED`). What the server runs before
 * it stores one.
 */
export function checkKeysJwe(keysJwe: string): void {
  parseKeysJwe(keysJwe);
}

/** A checked keys_jwe's parts, decoded. */
interface ParsedKeysJwe {
  encodedHeader: string;
  header: KeysJweHeader;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
}

function parseKeysJwe(keysJwe: string): ParsedKeysJwe {
  if (typeof keysJwe !== 'string') throw malformed('not a string');
  if (keysJwe.length > KEYS_JWE_MAX_LENGTH) throw tooLarge(keysJwe.length);
  const parts = keysJwe.split('.');
  if (parts.length !== 5) throw malformed('not five parts');
  const [header, encryptedKey, iv, ciphertext, tag] = parts as [string, string, string, string, string];
  if (encryptedKey !== '') throw malformed('ECDH-ES has no encrypted key');
  if (!parts.every((part) => BASE64URL_PART.test(part))) throw malformed('not base64url');
  const checked = checkHeader(header);
  const parsed = {
    encodedHeader: header,
    header: checked,
    iv: decodePart(iv, 'iv'),
    ciphertext: decodePart(ciphertext, 'ciphertext'),
    tag: decodePart(tag, 'tag'),
  };
  if (parsed.iv.length !== IV_LENGTH) throw malformed('iv length');
  if (parsed.ciphertext.length === 0) throw malformed('empty ciphertext');
  if (parsed.tag.length !== TAG_LENGTH) throw malformed('tag length');
  return parsed;
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
 *
 * ECDH-ES + A256GCM by hand (RFC 7518 §4.6 and §5.3) rather than jose's compactDecrypt, which runs five
 * WebCrypto operations (import of the epk, ECDH, the Concat KDF's SHA-256, import of the content key,
 * AES-GCM), each a job on Node's crypto thread pool awaited in turn; it took 1.35 to 1.72 times
 * fxa-crypto-relier's time (bench/scoped-keys.bench.ts). Only the ECDH needs the non-extractable
 * private key, so it and the epk's import stay in WebCrypto (which also refuses a point off the curve);
 * the one-block KDF and the GCM of a few hundred bytes run inline, about half the CPU time per call.
 * WebCrypto, not node:crypto, so the browser runs this same code. jose still makes every keys_jwe
 * (encryptScopedKeys), so every round trip test checks the two against each other, and the interop
 * test checks both against fxa-crypto-relier's node-jose.
 */
export async function openKeysJwe(keysJwe: string, privateKey: CryptoKey | JWK): Promise<Uint8Array> {
  const { encodedHeader, header, iv, ciphertext, tag } = parseKeysJwe(keysJwe);
  let sharedSecret: Uint8Array | undefined;
  let contentKey: Uint8Array | undefined;
  try {
    sharedSecret = await ecdhP256(header.epk, privateKey);
    contentKey = concatKdf(sharedSecret, header);
    return aesGcmDecrypt(contentKey, iv, concatBytes(ciphertext, tag), utf8(encodedHeader));
  } catch {
    throw new LatchkeyError('LK_KEYS_JWE_DECRYPT_FAILED');
  } finally {
    wipe(...[sharedSecret, contentKey].filter((bytes) => bytes !== undefined));
  }
}

const ECDH_P256 = { name: 'ECDH', namedCurve: 'P-256' } as const;
const COORDINATE_LENGTH = 32;

/** Z, the ECDH shared secret of the sender's ephemeral key and ours (RFC 7518 §4.6.2). */
async function ecdhP256(epk: KeysJweHeader['epk'], privateKey: CryptoKey | JWK): Promise<Uint8Array> {
  const x = fromBase64Url(epk.x);
  const y = fromBase64Url(epk.y);
  if (x.length !== COORDINATE_LENGTH || y.length !== COORDINATE_LENGTH) throw new Error('epk coordinates');
  // An uncompressed SEC1 point; WebCrypto refuses one that is not on the curve (an invalid-curve attack).
  const point = new Uint8Array(1 + 2 * COORDINATE_LENGTH);
  point[0] = 4;
  point.set(x, 1);
  point.set(y, 1 + COORDINATE_LENGTH);
  const publicKey = await crypto.subtle.importKey('raw', point, ECDH_P256, false, []);
  const ours =
    privateKey instanceof CryptoKey
      ? privateKey
      : await crypto.subtle.importKey('jwk', privateKey, ECDH_P256, false, ['deriveBits']);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: publicKey }, ours, 256));
}

/** A Concat KDF field: its length as 32 bits big-endian, then the bytes (RFC 7518 §4.6.2). */
function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

/**
 * The content key: NIST SP 800-56A's Concat KDF with SHA-256, as RFC 7518 §4.6.2 fixes it for
 * ECDH-ES in direct key agreement: AlgorithmID is `enc`, PartyUInfo and PartyVInfo are apu and apv
 * (empty when absent), SuppPubInfo the key length in bits. 256 bits are one SHA-256 block: round 1.
 */
function concatKdf(sharedSecret: Uint8Array, header: KeysJweHeader): Uint8Array {
  const keyBits = new Uint8Array(4);
  new DataView(keyBits.buffer).setUint32(0, 256);
  return sha256Digest(
    concatBytes(
      Uint8Array.of(0, 0, 0, 1),
      sharedSecret,
      lengthPrefixed(utf8(ENC)),
      lengthPrefixed(header.apu === undefined ? new Uint8Array(0) : fromBase64Url(header.apu)),
      lengthPrefixed(header.apv === undefined ? new Uint8Array(0) : fromBase64Url(header.apv)),
      keyBits,
    ),
  );
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
