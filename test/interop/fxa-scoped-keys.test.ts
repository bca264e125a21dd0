import {
  createKeysJwkPair,
  decryptScopedKeys,
  deriveFxaScopedKey,
  encryptScopedKeys,
  type FxaScopedKeyInput,
  KEYS_JWE_MAX_LENGTH,
  parseKeysJwk,
  toBase64Url,
  toHex,
  utf8,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriver, type FxaScopedKeyOptions, relier } from '../support/fxa-crypto-relier.js';

/**
 * Interop with Mozilla's own relier library, fxa-crypto-relier 2.7.0 (nobody here wrote it): its
 * deriver gives the same keys as ours on random inputs, its relier decrypts the keys_jwe we make, and
 * we decrypt the keys_jwe its deriver makes. It is CommonJS on node-jose, node-hkdf and base64url, and
 * runs on Node 20 as it is: `require` of its `src/` entry points (its `dist/` is a webpack bundle for
 * browsers), with Node's global WebCrypto for the few `crypto.*` calls of its relier utilities.
 */

const OLDSYNC = 'https://identity.mozilla.com/apps/oldsync';

const bytes = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });
/** Any scope token FxA and we both take (10+ printable characters, no space, quote or backslash), or Sync's. */
const identifier = fc.oneof(
  { weight: 1, arbitrary: fc.constant(OLDSYNC) },
  { weight: 4, arbitrary: fc.stringMatching(/^[\x21\x23-\x5b\x5d-\x7e]{10,80}$/) },
);
const scopedKeyInput: fc.Arbitrary<FxaScopedKeyInput> = fc.record({
  inputKey: bytes(32),
  uid: bytes(16),
  identifier,
  keyRotationSecret: bytes(32),
  keyRotationTimestamp: fc.integer({ min: 1_000_000_000_000, max: 9_999_999_999_999 }),
});

const asFxaOptions = (input: FxaScopedKeyInput): FxaScopedKeyOptions => ({
  inputKey: toHex(input.inputKey),
  uid: toHex(input.uid),
  identifier: input.identifier,
  keyRotationSecret: toHex(input.keyRotationSecret),
  keyRotationTimestamp: input.keyRotationTimestamp,
});

describe('fxa-crypto-relier ScopedKeys.deriveScopedKey', () => {
  it('derives the same JWK as ours on fresh random inputs (general and legacy Sync)', async () => {
    const scopedKeys = new deriver.ScopedKeys();
    await fc.assert(
      fc.asyncProperty(scopedKeyInput, async (input) => {
        const theirs = await scopedKeys.deriveScopedKey(asFxaOptions(input));
        expect(deriveFxaScopedKey(input)).toEqual(theirs);
      }),
      { numRuns: 300 },
    );
  });
});

describe('fxa-crypto-relier KeyUtils.decryptBundle', () => {
  it('decrypts the keys_jwe we make to its node-jose key pair, to exactly our keys', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(scopedKeyInput, { minLength: 1, maxLength: 2 }), async (inputs) => {
        const keys = inputs.map(deriveFxaScopedKey);
        fc.pre(new Set(keys.map((key) => key.scope)).size === keys.length);
        const keyUtils = new relier.KeyUtils();
        const { jwkPublicKey } = await keyUtils.createApplicationKeyPair();
        const keysJwk = toBase64Url(utf8(JSON.stringify(jwkPublicKey)));
        // node-jose sends a kid; we accept it and copy it into the header as FxA does.
        expect(parseKeysJwk(keysJwk).kid).toBe(jwkPublicKey.kid);
        let jwe: string;
        try {
          jwe = await encryptScopedKeys(keysJwk, keys);
        } catch (error) {
          // Two long identifiers beside oldsync can pass FxA's own 1,024-character limit: we refuse those.
          expect((error as { code?: string }).code).toBe('LK_KEYS_JWE_TOO_LARGE');
          return;
        }
        expect(jwe.length).toBeLessThanOrEqual(KEYS_JWE_MAX_LENGTH);
        const bundle = await keyUtils.decryptBundle(jwe);
        expect(bundle).toEqual(Object.fromEntries(keys.map((key) => [key.scope, key])));
      }),
      { numRuns: 40 },
    );
  });

  it('decrypts our keys_jwe for oldsync plus one app scope (the size FxA ships) to the same bytes', async () => {
    const keyUtils = new relier.KeyUtils();
    const { jwkPublicKey } = await keyUtils.createApplicationKeyPair();
    const input = fc.sample(scopedKeyInput, { numRuns: 1, seed: 9 })[0] as FxaScopedKeyInput;
    const keys = [
      deriveFxaScopedKey({ ...input, identifier: OLDSYNC }),
      deriveFxaScopedKey({ ...input, identifier: 'https://identity.mozilla.com/apps/notes' }),
    ];
    const jwe = await encryptScopedKeys(toBase64Url(utf8(JSON.stringify(jwkPublicKey))), keys);
    const bundle = await keyUtils.decryptBundle(jwe);
    expect(JSON.stringify(bundle)).toBe(JSON.stringify(Object.fromEntries(keys.map((key) => [key.scope, key]))));
  });
});

describe('fxa-crypto-relier DeriverUtils.encryptBundle (FxA’s consent side)', () => {
  it('makes keys_jwe that our relier side decrypts and checks', async () => {
    const scopedKeys = new deriver.ScopedKeys();
    const deriverUtils = new deriver.DeriverUtils();
    await fc.assert(
      fc.asyncProperty(scopedKeyInput, async (input) => {
        const key = await scopedKeys.deriveScopedKey(asFxaOptions(input));
        const pair = await createKeysJwkPair();
        const jwe = await deriverUtils.encryptBundle(pair.keysJwk, JSON.stringify({ [key.scope]: key }));
        const bundle = await decryptScopedKeys(jwe, pair.privateKey, [key.scope]);
        expect(bundle).toEqual({ [key.scope]: deriveFxaScopedKey(input) });
      }),
      { numRuns: 40 },
    );
  });

  it('refuses, as we do, a keys_jwk that carries the private key', async () => {
    const pair = await createKeysJwkPair();
    const withD = toBase64Url(utf8(JSON.stringify({ ...pair.publicJwk, d: toBase64Url(new Uint8Array(32).fill(1)) })));
    await expect(new deriver.DeriverUtils().encryptBundle(withD, '{}')).rejects.toThrow(/private key/);
    await expect(encryptScopedKeys(withD, [])).rejects.toMatchObject({ code: 'LK_KEYS_JWK_PRIVATE' });
  });
});
