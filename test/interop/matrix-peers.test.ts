import { readFileSync } from 'node:fs';
import {
  decodeRecoveryKey,
  decryptFromBackup,
  decryptKeyExport,
  encodeRecoveryKey,
  encryptForBackup,
  encryptKeyExport,
  fromBase64,
  fromUtf8,
  toBase64,
  utf8,
} from '@latchkey/core';
import * as wasm from '@matrix-org/matrix-sdk-crypto-wasm';
import fc from 'fast-check';
import {
  decodeRecoveryKey as jsDecodeRecoveryKey,
  encodeRecoveryKey as jsEncodeRecoveryKey,
} from 'matrix-js-sdk/lib/crypto-api/recovery-key.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeMatrixCrypto as crypto } from '../../packages/client/src/platform/node-crypto.js';

/**
 * Compatibility proven with the peers' own code: matrix-sdk-crypto-wasm (vodozemac inside) for backups
 * and key export files, matrix-js-sdk for the recovery key encoding.
 */

const vectors = JSON.parse(
  readFileSync(new URL('../../packages/core/vectors/matrix-key-export.json', import.meta.url), 'utf8'),
);
const rustExport = vectors.rust as { plaintext: string };
const sessions = JSON.parse(rustExport.plaintext) as Array<Record<string, unknown>>;
/** What wasm gives back: it parses into its ExportedRoomKey, which adds the history flag's default. */
const asWasmSeesThem = sessions.map((s) => ({ ...s, 'm.shared_history': false }));

beforeAll(async () => {
  await wasm.initAsync();
});

describe('megolm backup against matrix-sdk-crypto-wasm', () => {
  it('what we encrypt, wasm decrypts', () => {
    const key = wasm.BackupDecryptionKey.createRandomKey();
    const publicKey = fromBase64(key.megolmV1PublicKey.publicKeyBase64);
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (text, eph) => {
        const plaintext = JSON.stringify({ algorithm: 'm.megolm.v1.aes-sha2', note: text });
        const data = encryptForBackup(crypto, publicKey, utf8(plaintext), eph);
        expect(key.decryptV1(data.ephemeral, data.mac, data.ciphertext)).toBe(plaintext);
      }),
      { numRuns: 50 },
    );
  });

  it('what wasm backs up (OlmMachine.backupRoomKeys), we decrypt', async () => {
    const key = wasm.BackupDecryptionKey.createRandomKey();
    const machine = await wasm.OlmMachine.initialize(
      new wasm.UserId('@alice:example.org'),
      new wasm.DeviceId('ALICEDEVICE'),
    );
    await machine.importExportedRoomKeys(JSON.stringify(sessions), () => {});
    await machine.enableBackupV1(key.megolmV1PublicKey.publicKeyBase64, '1');
    const request = await machine.backupRoomKeys();
    expect(request).toBeDefined();
    const body = JSON.parse((request as wasm.KeysBackupRequest).body) as {
      rooms: Record<
        string,
        { sessions: Record<string, { session_data: { ephemeral: string; mac: string; ciphertext: string } }> }
      >;
    };
    const privateKey = fromBase64(key.toBase64());
    const [session] = sessions as Array<{ room_id: string; session_id: string; session_key: string }>;
    const data = body.rooms[session?.room_id as string]?.sessions[session?.session_id as string]?.session_data;
    expect(data).toBeDefined();
    const plaintext = JSON.parse(fromUtf8(decryptFromBackup(crypto, privateKey, data as never))) as {
      session_key: string;
    };
    expect(plaintext.session_key).toBe(session?.session_key);
    machine.free();
  });
});

describe('key export files against matrix-sdk-crypto-wasm', () => {
  it('what we export, wasm reads', async () => {
    const text = await encryptKeyExport(crypto, utf8(rustExport.plaintext), 'correct horse', {
      salt: globalThis.crypto.getRandomValues(new Uint8Array(16)),
      iv: globalThis.crypto.getRandomValues(new Uint8Array(16)),
      rounds: 1000,
    });
    expect(JSON.parse(wasm.OlmMachine.decryptExportedRoomKeys(text, 'correct horse'))).toEqual(asWasmSeesThem);
  });

  it('what wasm exports, we read', async () => {
    const text = wasm.OlmMachine.encryptExportedRoomKeys(rustExport.plaintext, 'battery staple', 1000);
    expect(JSON.parse(fromUtf8(await decryptKeyExport(crypto, text, 'battery staple')))).toEqual(asWasmSeesThem);
  });
});

describe('recovery key against matrix-js-sdk', () => {
  it('encodes like matrix-js-sdk and decodes what it encodes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        const theirs = jsEncodeRecoveryKey(key) as string;
        expect(encodeRecoveryKey(key)).toBe(theirs);
        expect(toBase64(decodeRecoveryKey(theirs))).toBe(toBase64(key));
        expect(toBase64(jsDecodeRecoveryKey(encodeRecoveryKey(key)))).toBe(toBase64(key));
      }),
      { numRuns: 200 },
    );
  });
});
