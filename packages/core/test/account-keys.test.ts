import {
  deriveBackupSigningSeed,
  deriveLocalStoreKeys,
  deriveSecretStorageKeyFromKB,
  deriveSessionSecrets,
  deriveWrapKBKey,
  type ExportKey,
  fromHex,
  hashToken,
  type KA,
  type KB,
  localStoreKeyCheck,
  type MasterKey,
  macCode,
  openAtRest,
  openKeysBundle,
  type SessionKey,
  sealAtRest,
  sealKeysBundle,
  toHex,
  unwrapKB,
  WRAPPED_KB_LENGTH,
  wrapKB,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AccountKeyVector } from '../vectors/generate.js';
import { expectLatchkeyError, loadVectors } from './vector-files.js';

/** The account key schedule against account-keys.json (computed with node:crypto, not with core). */

const file = loadVectors<AccountKeyVector>('account-keys.json');

type Of<F extends AccountKeyVector['function']> = Extract<AccountKeyVector, { function: F }>;
const byFunction = <F extends AccountKeyVector['function']>(name: F): Of<F>[] =>
  file.vectors.filter((v): v is Of<F> => v.function === name);

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const nonce12 = fc.uint8Array({ minLength: 12, maxLength: 12 });
/** OPAQUE export keys are 64 bytes (Nh of SHA-512). */
const exportKey64 = fc.uint8Array({ minLength: 64, maxLength: 64 });

describe('account-keys.json', () => {
  it('names its source and covers every function of the key schedule', () => {
    expect(file.source).toMatch(/generate\.ts with node:crypto/);
    const covered = new Set(file.vectors.map((v) => v.function));
    expect([...covered].sort()).toEqual(
      [
        'deriveBackupSigningSeed',
        'deriveLocalStoreKeys',
        'deriveSecretStorageKeyFromKB',
        'deriveSessionSecrets',
        'deriveWrapKBKey',
        'hashToken',
        'macCode',
        'openAtRest',
        'openKeysBundle',
        'sealAtRest',
        'sealKeysBundle',
        'unwrapKB',
        'wrapKB',
      ].sort(),
    );
  });

  it.each(byFunction('deriveWrapKBKey'))('$name', (v) => {
    expect(toHex(deriveWrapKBKey(fromHex(v.exportKeyHex) as ExportKey))).toBe(v.wrapKeyHex);
  });

  it.each(byFunction('wrapKB'))('$name', (v) => {
    const exportKey = fromHex(v.exportKeyHex) as ExportKey;
    const envelope = wrapKB(fromHex(v.kBHex) as KB, exportKey, fromHex(v.nonceHex));
    expect(toHex(envelope)).toBe(v.envelopeHex);
    expect(envelope.length).toBe(WRAPPED_KB_LENGTH);
    expect(toHex(unwrapKB(fromHex(v.envelopeHex), exportKey))).toBe(v.kBHex);
  });

  it.each(byFunction('unwrapKB'))('$name', (v) => {
    expectLatchkeyError(() => unwrapKB(fromHex(v.wrappedHex), fromHex(v.exportKeyHex) as ExportKey), v.error);
  });

  it.each(byFunction('deriveSessionSecrets'))('$name', (v) => {
    const { token, bundleKey } = deriveSessionSecrets(fromHex(v.sessionKeyHex) as SessionKey);
    expect(toHex(token)).toBe(v.tokenHex);
    expect(toHex(bundleKey)).toBe(v.bundleKeyHex);
  });

  it.each(byFunction('hashToken'))('$name', (v) => {
    expect(toHex(hashToken(fromHex(v.tokenHex)))).toBe(v.digestHex);
  });

  it.each(byFunction('sealKeysBundle'))('$name', (v) => {
    const bundleKey = fromHex(v.bundleKeyHex);
    const envelope = sealKeysBundle(bundleKey, fromHex(v.kAHex) as KA, fromHex(v.wrappedKBHex), fromHex(v.nonceHex));
    expect(toHex(envelope)).toBe(v.envelopeHex);
    const opened = openKeysBundle(bundleKey, fromHex(v.envelopeHex));
    expect(toHex(opened.kA)).toBe(v.kAHex);
    expect(toHex(opened.wrappedKB)).toBe(v.wrappedKBHex);
  });

  it.each(byFunction('openKeysBundle'))('$name', (v) => {
    expectLatchkeyError(() => openKeysBundle(fromHex(v.bundleKeyHex), fromHex(v.envelopeHex)), v.error);
  });

  it.each(byFunction('sealAtRest'))('$name', (v) => {
    const masterKey = fromHex(v.masterKeyHex) as MasterKey;
    const sealed = sealAtRest(masterKey, v.purpose, v.rowId, fromHex(v.plaintextHex), fromHex(v.nonceHex));
    expect(toHex(sealed)).toBe(v.envelopeHex);
    expect(toHex(openAtRest(masterKey, v.purpose, v.rowId, fromHex(v.envelopeHex)))).toBe(v.plaintextHex);
  });

  it.each(byFunction('openAtRest'))('$name', (v) => {
    const masterKey = fromHex(v.masterKeyHex) as MasterKey;
    expectLatchkeyError(() => openAtRest(masterKey, v.purpose, v.rowId, fromHex(v.sealedHex)), v.error);
  });

  it.each(byFunction('macCode'))('$name', (v) => {
    const binding = { purpose: v.purpose, email: v.email, accountId: v.accountId };
    expect(toHex(macCode(fromHex(v.masterKeyHex) as MasterKey, binding, v.code))).toBe(v.macHex);
  });

  it.each(byFunction('deriveLocalStoreKeys'))('$name', (v) => {
    const keys = deriveLocalStoreKeys(fromHex(v.kBHex) as KB, v.deviceId);
    expect(toHex(keys.sealKey)).toBe(v.sealKeyHex);
    expect(toHex(keys.idKey)).toBe(v.idKeyHex);
    expect(toHex(localStoreKeyCheck(keys))).toBe(v.keyCheckHex);
  });

  it.each(byFunction('deriveSecretStorageKeyFromKB'))('$name', (v) => {
    expect(toHex(deriveSecretStorageKeyFromKB(fromHex(v.kBHex) as KB))).toBe(v.keyHex);
  });

  it.each(byFunction('deriveBackupSigningSeed'))('$name', (v) => {
    expect(toHex(deriveBackupSigningSeed(fromHex(v.kBHex) as KB))).toBe(v.seedHex);
  });
});

describe('wrapKB properties', () => {
  it('unwrapKB inverts wrapKB for any kB, export key and nonce', () => {
    fc.assert(
      fc.property(bytes32, exportKey64, nonce12, (kB, exportKey, nonce) => {
        const wrapped = wrapKB(kB as KB, exportKey as ExportKey, nonce);
        expect(wrapped.length).toBe(WRAPPED_KB_LENGTH);
        expect(unwrapKB(wrapped, exportKey as ExportKey)).toEqual(kB);
      }),
    );
  });

  it('another export key never unwraps (LK_KEY_UNWRAP_FAILED)', () => {
    fc.assert(
      fc.property(bytes32, exportKey64, exportKey64, nonce12, (kB, exportKey, otherKey, nonce) => {
        fc.pre(toHex(exportKey) !== toHex(otherKey));
        const wrapped = wrapKB(kB as KB, exportKey as ExportKey, nonce);
        expectLatchkeyError(() => unwrapKB(wrapped, otherKey as ExportKey), 'LK_KEY_UNWRAP_FAILED');
      }),
    );
  });

  it('a sealed value opens only in its own at-rest row', () => {
    fc.assert(
      fc.property(
        bytes32,
        fc.string(),
        fc.string(),
        fc.uint8Array({ maxLength: 64 }),
        nonce12,
        (key, rowA, rowB, plain, nonce) => {
          fc.pre(rowA !== rowB);
          const masterKey = key as MasterKey;
          const sealed = sealAtRest(masterKey, 'kA', rowA, plain, nonce);
          expect(openAtRest(masterKey, 'kA', rowA, sealed)).toEqual(plain);
          expectLatchkeyError(() => openAtRest(masterKey, 'kA', rowB, sealed), 'LK_KEY_UNWRAP_FAILED');
        },
      ),
    );
  });
});
