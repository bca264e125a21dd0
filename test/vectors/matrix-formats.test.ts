import { readFileSync } from 'node:fs';
import {
  checkStorageKey,
  decodeRecoveryKey,
  decryptFromBackup,
  decryptKeyExport,
  decryptSecretBytes,
  deriveKeyFromPassphrase,
  encodeRecoveryKey,
  encryptForBackup,
  encryptKeyExport,
  encryptKeyExportBody,
  encryptSecretBytes,
  fromBase64,
  fromHex,
  fromUtf8,
  type MatrixCrypto,
  nobleMatrixCrypto,
  SECRET_STORAGE_ALGORITHM,
  toBase64,
  unarmour,
  utf8,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nodeMatrixCrypto } from '../../packages/client/src/platform/node-crypto.js';
import { webMatrixCrypto } from '../../packages/client/src/platform/webcrypto.js';
import { asyncLatchkeyErrorOf, latchkeyErrorOf } from '../support/errors.js';

/** The Matrix formats against upstream vectors, on both crypto back ends (noble everywhere, node:crypto in Node). */

const load = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../packages/core/vectors/${name}`, import.meta.url), 'utf8'));
const recoveryVectors = load('matrix-recovery-key.json');
const backupVectors = load('matrix-megolm-backup.json');
const ssssVectors = load('matrix-secret-storage.json');
const exportVectors = load('matrix-key-export.json');

interface BackupCase {
  name: string;
  privateKeyBase64?: string;
  privateKeyHex?: string;
  publicKeyBase64?: string;
  sessionData: { ephemeral: string; ciphertext: string; mac: string };
  plaintext: string;
  code: string;
}
const backupDecrypt = backupVectors.decrypt as BackupCase[];
const backupMustFail = backupVectors.mustFail as BackupCase[];
interface ExportCase {
  name: string;
  plaintext: string;
  passphrase: string;
  saltHex: string;
  ivHex: string;
  rounds: number;
  file: string;
  code: string;
}
const elementWebExports = exportVectors.elementWeb as ExportCase[];
const exportMustFail = exportVectors.mustFail as ExportCase[];

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const keyOf = (v: { privateKeyBase64?: string; privateKeyHex?: string }) =>
  v.privateKeyBase64 !== undefined ? fromBase64(v.privateKeyBase64) : fromHex(v.privateKeyHex as string);

describe('recovery key (spec appendices, key representation)', () => {
  it('encodes and decodes the upstream vectors', () => {
    const [alice, bob, odd] = recoveryVectors.vectors;
    expect(encodeRecoveryKey(fromHex(alice.keyHex))).toBe(alice.display);
    expect(hex(decodeRecoveryKey(alice.display))).toBe(alice.keyHex);
    expect(hex(decodeRecoveryKey(alice.compact))).toBe(alice.keyHex);
    expect(encodeRecoveryKey(fromBase64(bob.keyBase64))).toBe(bob.display);
    expect([...decodeRecoveryKey(odd.input)]).toEqual(odd.keyBytes);
  });

  it.each(recoveryVectors.mustFail as Array<{ input: string; code: string; reason: string }>)(
    'refuses $input ($reason)',
    ({ input, code, reason }) => {
      const error = latchkeyErrorOf(() => decodeRecoveryKey(input));
      expect(error.code).toBe(code);
      expect(error.details?.reason).toBe(reason);
    },
  );

  it('round-trips every key, always as 12 groups of 4 starting Es', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        const text = encodeRecoveryKey(key);
        expect(text).toMatch(/^Es[STU][1-9A-HJ-NP-Za-km-z] ([1-9A-HJ-NP-Za-km-z]{4} ){10}[1-9A-HJ-NP-Za-km-z]{4}$/);
        expect(hex(decodeRecoveryKey(text))).toBe(hex(key));
      }),
      { numRuns: 300 },
    );
  });

  it('catches every single-character typo', () => {
    const display: string = recoveryVectors.vectors[0].display;
    const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
    for (let i = 0; i < display.length; i++) {
      if (display[i] === ' ') continue;
      const typo =
        display.slice(0, i) +
        (display[i] === 'z' ? 'y' : alphabet[alphabet.indexOf(display[i] as string) + 1]) +
        display.slice(i + 1);
      expect(latchkeyErrorOf(() => decodeRecoveryKey(typo)).code).toBe('LK_BAD_RECOVERY_KEY');
    }
  });
});

describe.each([
  ['noble', nobleMatrixCrypto],
  ['node:crypto', nodeMatrixCrypto],
  ['WebCrypto (the browser platform)', webMatrixCrypto],
] as Array<[string, MatrixCrypto]>)('Matrix formats on %s', (_name, crypto) => {
  it.each(backupDecrypt)('backup decrypt: $name', (v) => {
    expect(fromUtf8(decryptFromBackup(crypto, keyOf(v), v.sessionData))).toBe(v.plaintext);
  });

  it('backup encrypt: byte-exact with the deterministic vector, and the public key matches', () => {
    const v = backupVectors.encrypt[0];
    const out = encryptForBackup(
      crypto,
      fromBase64(v.publicKeyBase64),
      utf8(v.plaintext),
      fromHex(v.ephemeralPrivateKeyHex),
    );
    expect(out).toEqual(v.sessionData);
    for (const d of backupDecrypt.filter((x) => x.publicKeyBase64 !== undefined)) {
      expect(toBase64(crypto.x25519PublicKey(keyOf(d)))).toBe(d.publicKeyBase64);
    }
  });

  it.each(backupMustFail)('backup decrypt refuses: $name', (v) => {
    expect(latchkeyErrorOf(() => decryptFromBackup(crypto, keyOf(v), v.sessionData)).code).toBe(v.code);
  });

  it('backup round trip for arbitrary plaintexts', () => {
    const privateKey = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const publicKey = crypto.x25519PublicKey(privateKey);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (plain, eph) => {
        const sealed = encryptForBackup(crypto, publicKey, plain, eph);
        expect(hex(decryptFromBackup(crypto, privateKey, sealed))).toBe(hex(plain));
      }),
      { numRuns: 100 },
    );
  });

  it('secret storage: passphrase and recovery-key key checks from matrix-rust-sdk', async () => {
    const p = ssssVectors.passphrase[0];
    const key = await deriveKeyFromPassphrase(crypto, p.passphrase, {
      algorithm: 'm.pbkdf2',
      salt: p.salt,
      iterations: p.iterations,
    });
    expect(hex(key)).toBe(p.keyHex);
    expect(checkStorageKey(crypto, key, { algorithm: SECRET_STORAGE_ALGORITHM, ...p.check })).toBe(true);

    const r = ssssVectors.recoveryKey[0];
    const fromRecovery = decodeRecoveryKey(r.recoveryKey);
    expect(hex(fromRecovery)).toBe(r.keyHex);
    expect(checkStorageKey(crypto, fromRecovery, { algorithm: SECRET_STORAGE_ALGORITHM, ...r.check })).toBe(true);
    expect(checkStorageKey(crypto, key, { algorithm: SECRET_STORAGE_ALGORITHM, ...r.check })).toBe(false);
    // No check stored: every key is accepted (rust accepts_any_passphrase_if_mac_and_iv_are_missing).
    expect(checkStorageKey(crypto, key, { algorithm: SECRET_STORAGE_ALGORITHM })).toBe(true);
  });

  it('secret storage: item MAC matches matrix-js-sdk, and items round-trip', () => {
    const v = ssssVectors.items[0];
    const item = encryptSecretBytes(crypto, fromHex(v.keyHex), v.secretName, fromHex(v.plaintextHex), fromHex(v.ivHex));
    expect(fromBase64(item.mac)).toEqual(fromBase64(v.mac));
    expect(hex(decryptSecretBytes(crypto, fromHex(v.keyHex), v.secretName, item))).toBe(v.plaintextHex);
    const wrongName = latchkeyErrorOf(() => decryptSecretBytes(crypto, fromHex(v.keyHex), 'm.megolm_backup.v1', item));
    expect(wrongName.code).toBe('LK_SECRET_DECRYPT_FAILED');
    const tampered = {
      ...item,
      ciphertext: toBase64(fromBase64(item.ciphertext).map((b, i) => (i === 0 ? b ^ 1 : b))),
    };
    expect(latchkeyErrorOf(() => decryptSecretBytes(crypto, fromHex(v.keyHex), v.secretName, tampered)).code).toBe(
      'LK_SECRET_DECRYPT_FAILED',
    );
  });

  it('secret storage: passphrase KDF vector, and hostile iteration counts are refused', async () => {
    const v = ssssVectors.passphraseKdf[0];
    const key = await deriveKeyFromPassphrase(crypto, v.passphrase, {
      algorithm: 'm.pbkdf2',
      salt: v.salt,
      iterations: v.iterations,
      bits: v.bits,
    });
    expect(hex(key)).toBe(v.keyHex);
    for (const iterations of [0, -1, 1.5, 2 ** 32]) {
      const error = await asyncLatchkeyErrorOf(
        deriveKeyFromPassphrase(crypto, 'x', { algorithm: 'm.pbkdf2', salt: 's', iterations }),
      );
      expect(error.code).toBe('LK_SECRET_STORAGE_UNSUPPORTED');
    }
  });

  it('key export: decrypts matrix-rust-sdk TEST_EXPORT', async () => {
    const v = exportVectors.rust;
    expect(fromUtf8(await decryptKeyExport(crypto, v.file, v.passphrase))).toBe(v.plaintext);
  });

  it.each(elementWebExports)('key export: $name decrypts, and re-encrypts byte for byte', async (v) => {
    expect(fromUtf8(await decryptKeyExport(crypto, v.file, v.passphrase))).toBe(v.plaintext);
    const body = await encryptKeyExportBody(crypto, utf8(v.plaintext), v.passphrase, {
      salt: fromHex(v.saltHex),
      iv: fromHex(v.ivHex),
      rounds: v.rounds,
    });
    expect(hex(body)).toBe(hex(unarmour(v.file)));
  });

  it.each(exportMustFail)('key export refuses: $name', async (v) => {
    expect((await asyncLatchkeyErrorOf(decryptKeyExport(crypto, v.file, v.passphrase))).code).toBe(v.code);
  });

  it('key export: our files clear IV bit 63 and read back', async () => {
    const text = await encryptKeyExport(crypto, utf8('[{"x":1}]'), 'pass phrase', {
      salt: new Uint8Array(16).fill(7),
      iv: new Uint8Array(16).fill(0xff),
      rounds: 10,
    });
    expect(text.startsWith('-----BEGIN MEGOLM SESSION DATA-----\n')).toBe(true);
    expect(text.endsWith('\n-----END MEGOLM SESSION DATA-----\n')).toBe(true);
    expect((unarmour(text)[17 + 8] as number) & 0x80).toBe(0);
    expect(fromUtf8(await decryptKeyExport(crypto, text, 'pass phrase'))).toBe('[{"x":1}]');
  });
});
