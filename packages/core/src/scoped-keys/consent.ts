import { fromHex } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import {
  type AccountRootKeys,
  checkKeyRotationTimestamp,
  checkScopeIdentifier,
  deriveScopedKey,
  type ScopedKeyClass,
  type ScopedKeyMetadata,
} from './derive.js';
import { encryptScopedKeys } from './keys-jwe.js';
import { parseKeysJwk } from './keys-jwk.js';

/**
 * The consent page's one step: from the account's root keys, the server's scoped-key metadata and the
 * app's `keys_jwk`, to the `keys_jwe` it posts back (FxA's createEncryptedBundle, reference §3.2).
 */

/**
 * One entry of the scoped-key metadata the server answers, in FxA's `scoped-key-data` shape
 * (reference §2.3: hex secret, millisecond timestamp) plus our key class; an entry without one is kB,
 * as every FxA scope is.
 */
export interface ScopedKeyDataEntry {
  identifier: string;
  keyRotationSecret: string;
  keyRotationTimestamp: number;
  keyClass?: ScopedKeyClass;
}

/** The metadata response: an entry per requested scope that carries keys, keyed by that scope. */
export type ScopedKeyData = Record<string, ScopedKeyDataEntry>;

const HEX64 = /^[0-9a-f]{64}$/;

function invalid(message: string): LatchkeyError {
  return new LatchkeyError('LK_SCOPED_KEY_INPUT_INVALID', message);
}

function entryMetadata(scope: string, entry: unknown): ScopedKeyMetadata {
  if (typeof entry !== 'object' || entry === null) throw invalid(`The metadata of ${scope} is not an object.`);
  const { identifier, keyRotationSecret, keyRotationTimestamp, keyClass } = entry as Record<string, unknown>;
  // The identifier is what the key is derived for: one differing from its scope would give the app another scope's key.
  if (identifier !== scope) throw invalid(`The metadata of ${scope} names another identifier.`);
  checkScopeIdentifier(scope);
  if (typeof keyRotationSecret !== 'string' || !HEX64.test(keyRotationSecret)) {
    throw invalid(`The keyRotationSecret of ${scope} is not 64 lower-case hex characters.`);
  }
  checkKeyRotationTimestamp(keyRotationTimestamp as number);
  if (keyClass !== undefined && keyClass !== 'kA' && keyClass !== 'kB') throw invalid(`The key class of ${scope}.`);
  return {
    identifier: scope,
    keyRotationSecret: fromHex(keyRotationSecret),
    keyRotationTimestamp: keyRotationTimestamp as number,
    keyClass: keyClass ?? 'kB',
  };
}

/**
 * Reads the server's scoped-key metadata for a request of `requestedScopes`: every entry must be for
 * one of them and name itself. Throws `LK_SCOPED_KEY_INPUT_INVALID`.
 */
export function parseScopedKeyData(data: unknown, requestedScopes: readonly string[]): ScopedKeyMetadata[] {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalid('The metadata is not an object.');
  const requested = new Set(requestedScopes);
  return Object.keys(data).map((scope) => {
    if (!requested.has(scope)) throw invalid(`The metadata names ${scope}, which was not requested.`);
    return entryMetadata(scope, (data as Record<string, unknown>)[scope]);
  });
}

/**
 * Derives each scope's key and encrypts them all to the app's `keys_jwk`. The key is checked before
 * anything is derived, so a bad one costs nothing and yields its `LK_KEYS_JWK_*` code; a bundle over
 * 1,024 characters is `LK_KEYS_JWE_TOO_LARGE`.
 */
export async function createKeysJwe(
  account: AccountRootKeys,
  metadata: readonly ScopedKeyMetadata[],
  keysJwk: string,
): Promise<string> {
  parseKeysJwk(keysJwk);
  const keys = metadata.map((entry) => deriveScopedKey(account, entry));
  return encryptScopedKeys(keysJwk, keys);
}
