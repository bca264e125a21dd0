import { readFileSync } from 'node:fs';
import {
  appKeyScope,
  checkKeysJwe,
  createKeysJwe,
  createKeysJwkPair,
  decryptScopedKeys,
  deriveFxaScopedKey,
  deriveScopedKey,
  encodeKeysJwk,
  encryptScopedKeys,
  fromBase64Url,
  fromHex,
  fromUtf8,
  type KA,
  type KB,
  KEYS_JWE_MAX_LENGTH,
  LatchkeyError,
  mayRequestScope,
  openKeysJwe,
  parseKeysJwk,
  parseScopedKeyData,
  type ScopedKeyJwk,
  type ScopedKeyMetadata,
  type ScopeRegistration,
  scopedKeyRotationTimestamp,
  scopesAllowedFor,
  toBase64Url,
  toHex,
  utf8,
} from '@latchkey/core';
import fc from 'fast-check';
import { CompactEncrypt, importJWK, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { asyncLatchkeyErrorOf, latchkeyErrorOf } from '../../../test/support/errors.js';

/** FxA's scoped keys against the published vectors (packages/core/vectors/fxa-scoped-keys.json). */

interface DerivationVector {
  name: string;
  identifier: string;
  uidHex: string;
  inputKeyHex: string;
  keyRotationSecretHex: string;
  keyRotationTimestamp: number;
  k?: string;
  kid?: string;
  kSfpHex?: string;
  kSHex?: string;
  error?: string;
}
interface Named {
  name: string;
  error: string;
}

const file = JSON.parse(readFileSync(new URL('../vectors/fxa-scoped-keys.json', import.meta.url), 'utf8'));
const derivations = file.scopedKeys as DerivationVector[];
const derivationFailures = file.scopedKeysMustFail as DerivationVector[];
const e2e = file.endToEnd;
const jwkValid = file.keysJwk.valid as Array<{ name: string; keysJwk: string; expect: object }>;
const jwkFailures = file.keysJwk.mustFail as Array<Named & { keysJwk: string }>;
const jweShapeFailures = file.keysJwe.mustFailShape as Array<Named & { keysJwe: string }>;
const jweDecryptFailures = file.keysJwe.mustFailDecrypt as Array<Named & { keysJwe: string }>;

const fxaInput = (v: DerivationVector) => ({
  inputKey: fromHex(v.inputKeyHex),
  uid: fromHex(v.uidHex),
  identifier: v.identifier,
  keyRotationSecret: fromHex(v.keyRotationSecretHex),
  keyRotationTimestamp: v.keyRotationTimestamp,
});

describe('scoped key derivation (FxA vectors)', () => {
  it.each(derivations.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    expect(deriveFxaScopedKey(fxaInput(v))).toEqual({ kty: 'oct', scope: v.identifier, k: v.k, kid: v.kid });
  });

  it('gives the raw kSfp and kS bytes of the spec doc', () => {
    const v = derivations.find((d) => d.kSHex !== undefined) as DerivationVector;
    const jwk = deriveFxaScopedKey(fxaInput(v));
    expect(toHex(fromBase64Url(jwk.k))).toBe(v.kSHex);
    expect(toHex(fromBase64Url(jwk.kid.slice(jwk.kid.indexOf('-') + 1)))).toBe(v.kSfpHex);
  });

  it.each(derivationFailures.map((v) => [v.name, v] as const))('refuses %s', (_name, v) => {
    expect(latchkeyErrorOf(() => deriveFxaScopedKey(fxaInput(v))).code).toBe(v.error);
  });

  it('rounds the kid seconds as FxA does, not floors them', () => {
    const v = derivations[0] as DerivationVector;
    expect(v.keyRotationTimestamp % 1000).toBeGreaterThanOrEqual(500);
    expect(deriveFxaScopedKey(fxaInput(v)).kid.startsWith(`${Math.floor(v.keyRotationTimestamp / 1000) + 1}-`)).toBe(
      true,
    );
  });

  it('gives Thunderbird Sync the legacy Sync derivation too (as FxA’s current deriver does)', () => {
    const sync = derivations.find((d) => d.identifier.endsWith('/oldsync')) as DerivationVector;
    const thunderbird = deriveFxaScopedKey({
      ...fxaInput(sync),
      identifier: 'https://identity.thunderbird.net/apps/sync',
    });
    expect({ k: thunderbird.k, kid: thunderbird.kid }).toEqual({ k: sync.k, kid: sync.kid });
  });
});

describe('key classes, kinds and rotation', () => {
  const account = {
    uid: fromHex(e2e.uidHex),
    kA: fromHex('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f') as KA,
    kB: fromHex(e2e.kBHex) as KB,
  };
  const times = { createdAt: 1_700_000_000_000, keysChangedAt: 1_700_000_000_000 };
  const meta = (keyClass: 'kA' | 'kB', at = times): ScopedKeyMetadata => ({
    identifier: e2e.identifier,
    keyRotationSecret: fromHex(e2e.keyRotationSecretHex),
    keyRotationTimestamp: scopedKeyRotationTimestamp(keyClass, at),
    keyClass,
  });

  it('derives a kB-class key from kB and a kA-class key from kA, with the same formula', () => {
    const fromKB = deriveScopedKey(account, { ...meta('kB'), keyRotationTimestamp: e2e.keyRotationTimestamp });
    expect(fromKB.k).toBe('Kkbk1_Q0oCcTmggeDH6880bQrxin2RLu5D00NcJazdQ');
    const fromKA = deriveScopedKey(account, meta('kA'));
    const expected = deriveFxaScopedKey({
      inputKey: account.kA,
      uid: account.uid,
      identifier: e2e.identifier,
      keyRotationSecret: fromHex(e2e.keyRotationSecretHex),
      keyRotationTimestamp: times.createdAt,
    });
    expect(fromKA).toEqual(expected);
    expect(fromKA.k).not.toBe(deriveScopedKey(account, meta('kB')).k);
  });

  it('a password reset (new kB, keysChangedAt moved) rotates kB-class keys and kids but keeps kA-class ones', () => {
    const afterReset = { ...times, keysChangedAt: times.keysChangedAt + 86_400_000 };
    const resetAccount = { ...account, kB: fromHex('11'.repeat(32)) as KB };
    const beforeB = deriveScopedKey(account, meta('kB'));
    const afterB = deriveScopedKey(resetAccount, meta('kB', afterReset));
    expect(afterB.k).not.toBe(beforeB.k);
    expect(afterB.kid > beforeB.kid).toBe(true);
    expect(deriveScopedKey(resetAccount, meta('kA', afterReset))).toEqual(deriveScopedKey(account, meta('kA')));
  });

  it('a scope rotated after the account changed keys uses its own later time', () => {
    expect(scopedKeyRotationTimestamp('kB', times, times.keysChangedAt + 5)).toBe(times.keysChangedAt + 5);
    expect(scopedKeyRotationTimestamp('kA', { createdAt: 1, keysChangedAt: 9 })).toBe(1);
  });

  it('refuses a kA-class legacy Sync scope, and an unknown class', () => {
    const sync = { ...meta('kA'), identifier: 'https://identity.mozilla.com/apps/oldsync' };
    expect(latchkeyErrorOf(() => deriveScopedKey(account, sync)).code).toBe('LK_SCOPED_KEY_INPUT_INVALID');
    const odd = { ...meta('kB'), keyClass: 'kC' } as unknown as ScopedKeyMetadata;
    expect(latchkeyErrorOf(() => deriveScopedKey(account, odd)).code).toBe('LK_SCOPED_KEY_INPUT_INVALID');
  });

  it('gives each client its own app-specific scope, and a different key from a service scope', () => {
    expect(appKeyScope('a4dea33c7b40fc34')).toBe('app_key:a4dea33c7b40fc34');
    expect(appKeyScope('client one')).toBe('app_key:client%20one');
    const app = deriveScopedKey(account, { ...meta('kB'), identifier: appKeyScope('a4dea33c7b40fc34') });
    const other = deriveScopedKey(account, { ...meta('kB'), identifier: appKeyScope('b4dea33c7b40fc34') });
    const service = deriveScopedKey(account, { ...meta('kB'), identifier: 'https://latchkey.example/scopes/notes' });
    expect(new Set([app.k, other.k, service.k]).size).toBe(3);
  });
});

describe('who may ask for a registered scope', () => {
  const service: ScopeRegistration = {
    scope: 'https://latchkey.example/scopes/notes',
    clients: ['notes-web', 'notes-cli'],
  };

  it('grants an app scope to its own client only', () => {
    const own: ScopeRegistration = { scope: appKeyScope('notes-web'), clients: ['notes-web'] };
    expect(mayRequestScope(own, 'notes-web')).toBe(true);
    expect(mayRequestScope(own, 'notes-cli')).toBe(false);
  });

  it("refuses a registration that lists another client for an app's own scope", () => {
    const stolen: ScopeRegistration = { scope: appKeyScope('notes-web'), clients: ['notes-web', 'evil'] };
    expect(mayRequestScope(stolen, 'evil')).toBe(false);
    expect(mayRequestScope(stolen, 'notes-web')).toBe(true);
  });

  it('grants a service scope to the clients it lists, and no other', () => {
    expect(mayRequestScope(service, 'notes-cli')).toBe(true);
    expect(mayRequestScope(service, 'photos-web')).toBe(false);
  });

  it('allows the base scopes and the allowed registered ones, in order', () => {
    const stolen: ScopeRegistration = { scope: appKeyScope('notes-web'), clients: ['evil'] };
    expect(scopesAllowedFor([service, stolen], 'notes-cli')).toEqual(['openid', 'offline_access', service.scope]);
    expect(scopesAllowedFor([service, stolen], 'evil')).toEqual(['openid', 'offline_access']);
  });
});

describe('keys_jwk', () => {
  it.each(jwkValid.map((v) => [v.name, v] as const))('accepts %s', (_name, v) => {
    expect(parseKeysJwk(v.keysJwk)).toEqual(v.expect);
  });

  it.each(jwkFailures.map((v) => [v.name, v] as const))('refuses %s', (_name, v) => {
    expect(latchkeyErrorOf(() => parseKeysJwk(v.keysJwk)).code).toBe(v.error);
  });

  it('encodes a public key as the spec vector spells it', () => {
    const { d: _d, ...publicJwk } = e2e.relierPrivateJwk;
    expect(encodeKeysJwk(publicJwk)).toBe(e2e.keysJwk);
  });
});

describe('keys_jwe', () => {
  const relierKey = e2e.relierPrivateJwk as JWK;

  it('opens the spec vector to exactly its keys_bundle bytes', async () => {
    expect(fromUtf8(await openKeysJwe(e2e.keysJwe, relierKey))).toBe(e2e.keysBundle);
  });

  it.each(jweShapeFailures.map((v) => [v.name, v] as const))('refuses the shape: %s', async (_name, v) => {
    expect(latchkeyErrorOf(() => checkKeysJwe(v.keysJwe)).code).toBe(v.error);
    expect((await asyncLatchkeyErrorOf(openKeysJwe(v.keysJwe, relierKey))).code).toBe(v.error);
  });

  it.each(jweDecryptFailures.map((v) => [v.name, v] as const))('refuses to decrypt: %s', async (_name, v) => {
    checkKeysJwe(v.keysJwe);
    expect((await asyncLatchkeyErrorOf(openKeysJwe(v.keysJwe, relierKey))).code).toBe(v.error);
  });

  /** A keys_jwe jose makes with extra protected-header members, for the relier's own ECDH-ES code. */
  async function joseJwe(extra: Record<string, unknown>, keyManagement: { apu?: Uint8Array; apv?: Uint8Array } = {}) {
    const pair = await createKeysJwkPair();
    const publicKey = await importJWK({ ...pair.publicJwk }, 'ECDH-ES');
    const jwe = await new CompactEncrypt(utf8(e2e.keysBundle))
      .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', ...extra })
      .setKeyManagementParameters(keyManagement)
      .encrypt(publicKey);
    return { jwe, pair };
  }

  it("opens jose's ECDH-ES with apu and apv as RFC 7518 §4.6.2 puts them in the KDF", async () => {
    const { jwe, pair } = await joseJwe({}, { apu: utf8('Alice'), apv: utf8('Bob') });
    expect(JSON.parse(fromUtf8(fromBase64Url(jwe.split('.')[0] as string)))).toMatchObject({
      apu: 'QWxpY2U',
      apv: 'Qm9i',
    });
    expect(fromUtf8(await openKeysJwe(jwe, pair.privateKey))).toBe(e2e.keysBundle);
  });

  it('refuses a critical header extension, and an ephemeral key off the curve', async () => {
    const { jwe, pair } = await joseJwe({});
    const [header, ...rest] = jwe.split('.');
    const withHeader = (edit: (header: Record<string, unknown>) => void) => {
      const parsed = JSON.parse(fromUtf8(fromBase64Url(header as string)));
      edit(parsed);
      return [toBase64Url(utf8(JSON.stringify(parsed))), ...rest].join('.');
    };
    const critical = withHeader((h) => Object.assign(h, { crit: ['exp'], exp: 1 }));
    expect(latchkeyErrorOf(() => checkKeysJwe(critical)).code).toBe('LK_KEYS_JWE_MALFORMED');
    expect((await asyncLatchkeyErrorOf(openKeysJwe(critical, pair.privateKey))).code).toBe('LK_KEYS_JWE_MALFORMED');
    const offCurve = withHeader((h) => {
      (h.epk as { y: string }).y = toBase64Url(new Uint8Array(32).fill(1));
    });
    checkKeysJwe(offCurve);
    expect((await asyncLatchkeyErrorOf(openKeysJwe(offCurve, pair.privateKey))).code).toBe(
      'LK_KEYS_JWE_DECRYPT_FAILED',
    );
  });

  const account = { uid: fromHex(e2e.uidHex), kA: new Uint8Array(32) as KA, kB: fromHex(e2e.kBHex) as KB };
  const keyFor = (identifier: string): ScopedKeyJwk =>
    deriveScopedKey(account, {
      identifier,
      keyRotationSecret: fromHex(e2e.keyRotationSecretHex),
      keyRotationTimestamp: e2e.keyRotationTimestamp,
      keyClass: 'kB',
    });

  it('round-trips the derived keys of two scopes, oldsync included, under 1,024 characters', async () => {
    const pair = await createKeysJwkPair();
    const keys = [keyFor('https://identity.mozilla.com/apps/oldsync'), keyFor(e2e.identifier)];
    const jwe = await encryptScopedKeys(pair.keysJwk, keys);
    expect(jwe.length).toBeLessThanOrEqual(KEYS_JWE_MAX_LENGTH);
    expect(jwe.split('.')[1]).toBe('');
    const bundle = await decryptScopedKeys(
      jwe,
      pair.privateKey,
      keys.map((key) => key.scope),
    );
    expect(bundle).toEqual(Object.fromEntries(keys.map((key) => [key.scope, key])));
  });

  it('encrypts to the spec relier key so that the relier reads the spec key back', async () => {
    const jwe = await encryptScopedKeys(e2e.keysJwk, [keyFor(e2e.identifier)]);
    const bundle = await decryptScopedKeys(jwe, relierKey, [e2e.identifier]);
    expect(bundle[e2e.identifier]?.k).toBe('Kkbk1_Q0oCcTmggeDH6880bQrxin2RLu5D00NcJazdQ');
    expect(bundle[e2e.identifier]?.kid).toBe('1510726317-Voc-Eb9IpoTINuo9ll7bjA');
  });

  it('refuses to make a keys_jwe over 1,024 characters (three scopes with oldsync)', async () => {
    const pair = await createKeysJwkPair();
    const keys = [
      keyFor('https://identity.mozilla.com/apps/oldsync'),
      keyFor('https://latchkey.example/scopes/notes'),
      keyFor('https://latchkey.example/scopes/photos'),
    ];
    const error = await asyncLatchkeyErrorOf(encryptScopedKeys(pair.keysJwk, keys));
    expect(error.code).toBe('LK_KEYS_JWE_TOO_LARGE');
    expect(error.details?.length).toBeGreaterThan(KEYS_JWE_MAX_LENGTH);
  });

  it('refuses to encrypt to a bad keys_jwk, with its code', async () => {
    const privateOne = jwkFailures.find((v) => v.error === 'LK_KEYS_JWK_PRIVATE') as { keysJwk: string };
    expect((await asyncLatchkeyErrorOf(encryptScopedKeys(privateOne.keysJwk, [keyFor(e2e.identifier)]))).code).toBe(
      'LK_KEYS_JWK_PRIVATE',
    );
    const offCurve = jwkFailures.find((v) => v.error === 'LK_KEYS_JWK_BAD_POINT') as { keysJwk: string };
    expect((await asyncLatchkeyErrorOf(encryptScopedKeys(offCurve.keysJwk, [keyFor(e2e.identifier)]))).code).toBe(
      'LK_KEYS_JWK_BAD_POINT',
    );
  });

  it('refuses to decrypt with a key of another curve as LK_KEYS_JWE_DECRYPT_FAILED, not a jose error', async () => {
    const p384 = { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'AAAA', d: 'AAAA' } as JWK;
    expect((await asyncLatchkeyErrorOf(openKeysJwe(e2e.keysJwe, p384))).code).toBe('LK_KEYS_JWE_DECRYPT_FAILED');
  });

  it('refuses to bundle a key whose scope is not a scope token', async () => {
    const key = { ...keyFor(e2e.identifier), scope: '__proto__' };
    expect((await asyncLatchkeyErrorOf(encryptScopedKeys(e2e.keysJwk, [key]))).code).toBe(
      'LK_SCOPED_KEY_INPUT_INVALID',
    );
  });

  it('refuses an empty bundle and a scope twice', async () => {
    const key = keyFor(e2e.identifier);
    expect((await asyncLatchkeyErrorOf(encryptScopedKeys(e2e.keysJwk, []))).code).toBe('LK_SCOPED_KEYS_BUNDLE_INVALID');
    expect((await asyncLatchkeyErrorOf(encryptScopedKeys(e2e.keysJwk, [key, key]))).code).toBe(
      'LK_SCOPED_KEYS_BUNDLE_INVALID',
    );
  });

  it('a keys_jwe for another key pair does not decrypt', async () => {
    const [mine, theirs] = [await createKeysJwkPair(), await createKeysJwkPair()];
    const jwe = await encryptScopedKeys(theirs.keysJwk, [keyFor(e2e.identifier)]);
    expect((await asyncLatchkeyErrorOf(decryptScopedKeys(jwe, mine.privateKey, [e2e.identifier]))).code).toBe(
      'LK_KEYS_JWE_DECRYPT_FAILED',
    );
  });

  /** A well-formed JWE to the pair, carrying whatever plaintext a hostile consent page chose. */
  const sealRaw = async (plaintext: string, publicJwk: JWK) =>
    new CompactEncrypt(new TextEncoder().encode(plaintext))
      .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' })
      .encrypt(await importJWK(publicJwk, 'ECDH-ES'));

  it.each([
    ['not JSON', () => 'keys'],
    ['a JSON array', () => '[]'],
    ['a scope not asked for', (k: ScopedKeyJwk) => JSON.stringify({ [k.scope]: k, 'https://other.example/x': k })],
    ['a scope missing', () => '{}'],
    ['scope member differing from its key', (k: ScopedKeyJwk) => JSON.stringify({ [k.scope]: { ...k, scope: 'x' } })],
    [
      'no scope member (the spec doc’s design-only bundle)',
      (k: ScopedKeyJwk) => {
        const { scope: _s, ...rest } = k;
        return JSON.stringify({ [k.scope]: rest });
      },
    ],
    ['kty not oct', (k: ScopedKeyJwk) => JSON.stringify({ [k.scope]: { ...k, kty: 'EC' } })],
    [
      'k of 31 bytes',
      (k: ScopedKeyJwk) => JSON.stringify({ [k.scope]: { ...k, k: toBase64Url(fromBase64Url(k.k).subarray(1)) } }),
    ],
    ['k padded', (k: ScopedKeyJwk) => JSON.stringify({ [k.scope]: { ...k, k: `${k.k}=` } })],
    [
      'kid whose time part is not a number',
      (k: ScopedKeyJwk) => JSON.stringify({ [k.scope]: { ...k, kid: k.kid.replace('-', '') } }),
    ],
    [
      'kid of time zero',
      (k: ScopedKeyJwk) => JSON.stringify({ [k.scope]: { ...k, kid: `0-${k.kid.slice(k.kid.indexOf('-') + 1)}` } }),
    ],
  ])('the relier refuses a bundle with %s', async (_name, make) => {
    const pair = await createKeysJwkPair();
    const key = keyFor(e2e.identifier);
    const jwe = await sealRaw(make(key), pair.publicJwk as JWK);
    expect((await asyncLatchkeyErrorOf(decryptScopedKeys(jwe, pair.privateKey, [key.scope]))).code).toBe(
      'LK_SCOPED_KEYS_BUNDLE_INVALID',
    );
  });
});

describe('the consent step: server metadata to keys_jwe', () => {
  const account = { uid: fromHex(e2e.uidHex), kA: fromHex('ab'.repeat(32)) as KA, kB: fromHex(e2e.kBHex) as KB };
  const notes = 'https://latchkey.example/scopes/notes';
  const data = {
    [e2e.identifier]: {
      identifier: e2e.identifier,
      keyRotationSecret: e2e.keyRotationSecretHex,
      keyRotationTimestamp: e2e.keyRotationTimestamp,
    },
    [notes]: {
      identifier: notes,
      keyRotationSecret: '0'.repeat(64),
      keyRotationTimestamp: 1700000000000,
      keyClass: 'kA',
    },
  };
  const requested = ['openid', e2e.identifier, notes];

  it("reads FxA's scoped-key-data shape (kB by default) and our kA class", () => {
    expect(parseScopedKeyData(data, requested)).toEqual([
      {
        identifier: e2e.identifier,
        keyRotationSecret: fromHex(e2e.keyRotationSecretHex),
        keyRotationTimestamp: e2e.keyRotationTimestamp,
        keyClass: 'kB',
      },
      { identifier: notes, keyRotationSecret: new Uint8Array(32), keyRotationTimestamp: 1700000000000, keyClass: 'kA' },
    ]);
  });

  it('makes a keys_jwe the relier opens to the spec key and the kA-class key', async () => {
    const pair = await createKeysJwkPair();
    const jwe = await createKeysJwe(account, parseScopedKeyData(data, requested), pair.keysJwk);
    const bundle = await decryptScopedKeys(jwe, pair.privateKey, [e2e.identifier, notes]);
    expect(bundle[e2e.identifier]?.k).toBe('Kkbk1_Q0oCcTmggeDH6880bQrxin2RLu5D00NcJazdQ');
    expect(bundle[notes]).toEqual(
      deriveFxaScopedKey({
        inputKey: account.kA,
        uid: account.uid,
        identifier: notes,
        keyRotationSecret: new Uint8Array(32),
        keyRotationTimestamp: 1700000000000,
      }),
    );
  });

  it('checks keys_jwk before deriving anything', async () => {
    const bad = jwkFailures.find((v) => v.error === 'LK_KEYS_JWK_PRIVATE') as { keysJwk: string };
    expect((await asyncLatchkeyErrorOf(createKeysJwe(account, [], bad.keysJwk))).code).toBe('LK_KEYS_JWK_PRIVATE');
  });

  const entry = data[e2e.identifier] as Record<string, unknown>;
  it.each([
    ['not an object', []],
    [
      'a scope that was not requested',
      { 'https://other.example/scope': { ...entry, identifier: 'https://other.example/scope' } },
    ],
    ['an identifier differing from its scope', { [e2e.identifier]: { ...entry, identifier: notes } }],
    ['a secret in upper-case hex', { [e2e.identifier]: { ...entry, keyRotationSecret: 'AB'.repeat(32) } }],
    ['a secret of 31 bytes', { [e2e.identifier]: { ...entry, keyRotationSecret: 'ab'.repeat(31) } }],
    ['a timestamp in seconds', { [e2e.identifier]: { ...entry, keyRotationTimestamp: 1510726317 } }],
    ['a timestamp as a string', { [e2e.identifier]: { ...entry, keyRotationTimestamp: '1510726317000' } }],
    ['an unknown key class', { [e2e.identifier]: { ...entry, keyClass: 'kC' } }],
  ])('refuses metadata with %s', (_name, bad) => {
    expect(latchkeyErrorOf(() => parseScopedKeyData(bad, requested)).code).toBe('LK_SCOPED_KEY_INPUT_INVALID');
  });
});

describe('hostile input tables (property tests)', () => {
  const codeOf = (action: () => unknown): string | undefined => {
    try {
      action();
      return undefined;
    } catch (error) {
      if (error instanceof LatchkeyError) return error.code;
      throw error;
    }
  };

  it('parseKeysJwk answers any string or any JSON with a keys_jwk code, never a raw error', () => {
    const asParam = fc.jsonValue().map((value) => toBase64Url(new TextEncoder().encode(JSON.stringify(value))));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 1100 }), asParam), (text) => {
        const code = codeOf(() => parseKeysJwk(text));
        expect(code === undefined || code.startsWith('LK_KEYS_JWK_')).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('every fresh key pair round-trips through encodeKeysJwk and parseKeysJwk', async () => {
    for (let i = 0; i < 20; i++) {
      const pair = await createKeysJwkPair();
      expect(parseKeysJwk(encodeKeysJwk(pair.publicJwk))).toEqual(pair.publicJwk);
    }
  });

  it('checkKeysJwe answers any string with a keys_jwe code, never a raw error', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 1100 }), (text) => {
        const code = codeOf(() => checkKeysJwe(text));
        expect(code === undefined || code.startsWith('LK_KEYS_JWE_')).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('any one-character change to the spec keys_jwe is refused with a keys_jwe code', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: e2e.keysJwe.length - 1 }),
        fc.constantFrom(...alphabet),
        async (at: number, char: string) => {
          fc.pre(e2e.keysJwe[at] !== char);
          const altered = e2e.keysJwe.slice(0, at) + char + e2e.keysJwe.slice(at + 1);
          const error = await asyncLatchkeyErrorOf(openKeysJwe(altered, e2e.relierPrivateJwk));
          expect(error.code).toMatch(/^LK_KEYS_JWE_/);
        },
      ),
      { numRuns: 300 },
    );
  });
});
