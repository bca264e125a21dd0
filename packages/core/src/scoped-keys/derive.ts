import type { KA, KB } from '../brand.js';
import { hkdfSha256, sha256Digest } from '../crypto/primitives.js';
import { concatBytes, toBase64Url } from '../encoding.js';
import { LatchkeyError } from '../errors.js';

/**
 * Scoped keys for OAuth apps, derived exactly as Firefox Accounts derives them
 * (../shared/reference/fxa-scoped-keys.md §2; mozilla/fxa-crypto-relier src/deriver/ScopedKeys.js), so
 * a relier written for FxA reads ours unchanged. Vectors: packages/core/vectors/fxa-scoped-keys.json.
 */

/** The HKDF info prefix of every general scoped key (reference §0); the identifier follows it. */
export const SCOPED_KEY_INFO_PREFIX = 'identity.mozilla.com/picl/v1/scoped_key\n';
/** The HKDF info of the legacy Sync key (reference §2.1). */
export const LEGACY_SYNC_INFO = 'identity.mozilla.com/picl/v1/oldsync';
/**
 * Scopes that keep Sync's legacy derivation. FxA's current deriver (libs/vendored/crypto-relier) has
 * both; fxa-crypto-relier 2.7.0 knows only oldsync.
 */
export const LEGACY_SYNC_SCOPES: readonly string[] = [
  'https://identity.mozilla.com/apps/oldsync',
  'https://identity.thunderbird.net/apps/sync',
];

/** The account id's bytes (our ids are base64url of 16 random bytes, as FxA's uid is 16 bytes). */
export const UID_LENGTH = 16;
/** kA and kB. */
export const ROOT_KEY_LENGTH = 32;
export const KEY_ROTATION_SECRET_LENGTH = 32;
/** kSfp (16) ‖ kS (32): fingerprint and key come out of one HKDF call, so the fingerprint says nothing of the key. */
const SCOPED_OKM_LENGTH = 48;
const FINGERPRINT_LENGTH = 16;
const LEGACY_SYNC_KEY_LENGTH = 64;

/** The smallest and largest 13-digit millisecond timestamps: FxA takes only these, and kids then sort. */
const MIN_TIMESTAMP_MS = 1_000_000_000_000;
const MAX_TIMESTAMP_MS = 9_999_999_999_999;
/** FxA refuses shorter identifiers; the upper bound keeps a bundle under keys_jwe's 1,024 characters. */
const MIN_IDENTIFIER_LENGTH = 10;
const MAX_IDENTIFIER_LENGTH = 256;
/** An OAuth scope token (RFC 6749 §3.3): printable ASCII without space, `"` or `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * Which account key a scope's keys come from. `kB` (the default, as in FxA) is lost with a password
 * reset, so a reset rotates the key and its kid. `kA` is held by the server and survives a reset: for
 * data the user must not lose, at the price of the server being able to derive it.
 */
export type ScopedKeyClass = 'kA' | 'kB';

/**
 * `app`: one client's own scope, granted to that client alone. `service`: a named scope that several
 * registered clients may be granted. Both derive the same way; only the identifier and who may ask differ.
 */
export type KeyScopeKind = 'app' | 'service';

/**
 * What the consent page needs to derive one scope's key (FxA's `scoped-key-data` entry, reference
 * §2.3, plus our key class).
 */
export interface ScopedKeyMetadata {
  /** The scope itself; also the JWK's `scope` and the bundle's key. */
  identifier: string;
  /** 32 bytes; rotating it rotates this scope's key alone (FxA deploys all zeros). */
  keyRotationSecret: Uint8Array;
  /** Milliseconds, 13 digits: when this scope's key last changed (see {@link scopedKeyRotationTimestamp}). */
  keyRotationTimestamp: number;
  keyClass: ScopedKeyClass;
}

/** A scoped key as FxA hands it to a relier: a symmetric JWK with FxA's non-standard `scope` member. */
export interface ScopedKeyJwk {
  kty: 'oct';
  scope: string;
  /** base64url of the key: 32 bytes, or 64 for legacy Sync. */
  k: string;
  /** `<seconds>-<base64url fingerprint>` (legacy Sync: `<milliseconds>-<base64url SHA-256(kB)[0:16]>`). */
  kid: string;
}

/** FxA's own input shape (ScopedKeys.deriveScopedKey), in bytes rather than hex. */
export interface FxaScopedKeyInput {
  /** kB in FxA; kA or kB here, by the scope's class. */
  inputKey: Uint8Array;
  uid: Uint8Array;
  identifier: string;
  keyRotationSecret: Uint8Array;
  keyRotationTimestamp: number;
}

/** The account secrets the consent page holds after a login. */
export interface AccountRootKeys {
  /** The account id's 16 bytes: the HKDF salt, so two accounts never share a scoped key. */
  uid: Uint8Array;
  kA: KA;
  kB: KB;
}

function invalid(message: string): LatchkeyError {
  return new LatchkeyError('LK_SCOPED_KEY_INPUT_INVALID', message);
}

function checkLength(bytes: Uint8Array, length: number, name: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) throw invalid(`${name} must be ${length} bytes.`);
}

/** Throws `LK_SCOPED_KEY_INPUT_INVALID` unless `identifier` is a usable key-bearing scope. */
export function checkScopeIdentifier(identifier: string): void {
  if (
    typeof identifier !== 'string' ||
    identifier.length < MIN_IDENTIFIER_LENGTH ||
    identifier.length > MAX_IDENTIFIER_LENGTH ||
    !SCOPE_TOKEN.test(identifier)
  ) {
    throw invalid(
      `A scope identifier is ${MIN_IDENTIFIER_LENGTH} to ${MAX_IDENTIFIER_LENGTH} printable ASCII characters with no space, quote or backslash.`,
    );
  }
}

/** Throws `LK_SCOPED_KEY_INPUT_INVALID` unless `timestamp` is a 13-digit integer of milliseconds, as FxA takes. */
export function checkKeyRotationTimestamp(timestamp: number): void {
  if (!Number.isSafeInteger(timestamp) || timestamp < MIN_TIMESTAMP_MS || timestamp > MAX_TIMESTAMP_MS) {
    throw invalid('keyRotationTimestamp must be a 13-digit integer number of milliseconds.');
  }
}

function checkFxaInput(input: FxaScopedKeyInput): void {
  checkLength(input.inputKey, ROOT_KEY_LENGTH, 'The input key');
  checkLength(input.uid, UID_LENGTH, 'uid');
  checkLength(input.keyRotationSecret, KEY_ROTATION_SECRET_LENGTH, 'keyRotationSecret');
  checkKeyRotationTimestamp(input.keyRotationTimestamp);
  checkScopeIdentifier(input.identifier);
}

/** True for the scopes whose key is Sync's legacy 64-byte key rather than a general scoped key. */
export function isLegacySyncScope(identifier: string): boolean {
  return LEGACY_SYNC_SCOPES.includes(identifier);
}

/**
 * General scoped key (reference §2.1): HKDF-SHA256(IKM = inputKey ‖ keyRotationSecret, salt = uid,
 * info = prefix + identifier, 48 bytes); the first 16 bytes name the key, the last 32 are the key.
 * The kid's prefix is `Math.round(ms / 1000)`, rounded as FxA rounds (reference §2.2 pitfall 1).
 */
function deriveGeneralKey(input: FxaScopedKeyInput): ScopedKeyJwk {
  const ikm = concatBytes(input.inputKey, input.keyRotationSecret);
  const okm = hkdfSha256(ikm, input.uid, SCOPED_KEY_INFO_PREFIX + input.identifier, SCOPED_OKM_LENGTH);
  const seconds = Math.round(input.keyRotationTimestamp / 1000);
  const jwk: ScopedKeyJwk = {
    kty: 'oct',
    scope: input.identifier,
    k: toBase64Url(okm.subarray(FINGERPRINT_LENGTH)),
    kid: `${seconds}-${toBase64Url(okm.subarray(0, FINGERPRINT_LENGTH))}`,
  };
  ikm.fill(0);
  okm.fill(0);
  return jwk;
}

/**
 * Legacy Sync key (reference §2.2): 64 bytes of HKDF(kB, no salt, info `…/oldsync`); the kid is the
 * full millisecond timestamp and SHA-256(kB)[0:16], which is Sync's tokenserver "client state". The
 * rotation secret and uid play no part, as in FxA.
 */
function deriveLegacySyncKey(input: FxaScopedKeyInput): ScopedKeyJwk {
  const key = hkdfSha256(input.inputKey, new Uint8Array(0), LEGACY_SYNC_INFO, LEGACY_SYNC_KEY_LENGTH);
  const clientState = sha256Digest(input.inputKey).subarray(0, FINGERPRINT_LENGTH);
  const jwk: ScopedKeyJwk = {
    kty: 'oct',
    scope: input.identifier,
    k: toBase64Url(key),
    kid: `${input.keyRotationTimestamp}-${toBase64Url(clientState)}`,
  };
  key.fill(0);
  return jwk;
}

/**
 * FxA's `deriveScopedKey`, byte for byte: the general derivation, or the legacy Sync one for the Sync
 * scopes. Throws `LK_SCOPED_KEY_INPUT_INVALID` on inputs FxA would refuse.
 */
export function deriveFxaScopedKey(input: FxaScopedKeyInput): ScopedKeyJwk {
  checkFxaInput(input);
  return isLegacySyncScope(input.identifier) ? deriveLegacySyncKey(input) : deriveGeneralKey(input);
}

/**
 * One scope's key for an account: from kB, or from kA for a kA-class scope. Legacy Sync is kB-only
 * (its kid is a hash of kB), so a kA-class Sync scope is refused.
 */
export function deriveScopedKey(account: AccountRootKeys, metadata: ScopedKeyMetadata): ScopedKeyJwk {
  if (metadata.keyClass !== 'kA' && metadata.keyClass !== 'kB') throw invalid('keyClass must be "kA" or "kB".');
  if (metadata.keyClass === 'kA' && isLegacySyncScope(metadata.identifier)) {
    throw invalid('The legacy Sync scopes derive from kB only.');
  }
  return deriveFxaScopedKey({
    inputKey: metadata.keyClass === 'kA' ? account.kA : account.kB,
    uid: account.uid,
    identifier: metadata.identifier,
    keyRotationSecret: metadata.keyRotationSecret,
    keyRotationTimestamp: metadata.keyRotationTimestamp,
  });
}

/** The account times a scope's rotation timestamp depends on (milliseconds). */
export interface AccountKeyTimes {
  createdAt: number;
  /** When kB last changed: sign-up, then each password reset (a password change keeps it). */
  keysChangedAt: number;
}

/**
 * A scope's keyRotationTimestamp: FxA's `max(keysChangedAt, scope's own rotation time)` for kB-class
 * scopes (reference §2.3), so a reset moves every kB-class kid forward; kA outlives resets, so a
 * kA-class scope counts from the account's creation instead and keeps its kid.
 */
export function scopedKeyRotationTimestamp(
  keyClass: ScopedKeyClass,
  account: AccountKeyTimes,
  scopeRotatedAt = 0,
): number {
  const base = keyClass === 'kA' ? account.createdAt : account.keysChangedAt;
  return Math.max(base, scopeRotatedAt);
}

/**
 * The identifier of an app-specific scope: the client's own scope, so no other client can be granted
 * it. Shaped like FxA's design-only `app_key:` scopes (reference §2.1), but per client, not per origin,
 * since two apps may share an origin.
 */
export function appKeyScope(clientId: string): string {
  const identifier = `app_key:${encodeURIComponent(clientId)}`;
  checkScopeIdentifier(identifier);
  return identifier;
}
