import { readFileSync } from 'node:fs';
import {
  armour,
  checkStorageKey,
  decodeRecoveryKey,
  decryptFromBackup,
  decryptKeyExport,
  decryptSecretBytes,
  type EncryptedSecret,
  encodeRecoveryKey,
  encryptForBackup,
  encryptKeyExport,
  encryptSecretBytes,
  fromBase64,
  fromUtf8,
  LatchkeyError,
  makeKeyCheck,
  toBase64,
  unarmour,
  utf8,
} from '@latchkey/core';
import * as wasm from '@matrix-org/matrix-sdk-crypto-wasm';
import fc from 'fast-check';
import {
  decodeRecoveryKey as jsDecodeRecoveryKey,
  encodeRecoveryKey as jsEncodeRecoveryKey,
} from 'matrix-js-sdk/lib/crypto-api/recovery-key.js';
import {
  type AccountDataClient,
  calculateKeyCheck as jsCalculateKeyCheck,
  ServerSideSecretStorageImpl,
} from 'matrix-js-sdk/lib/secret-storage.js';
import jsDecryptSecret from 'matrix-js-sdk/lib/utils/decryptAESSecretStorageItem.js';
import jsEncryptSecret from 'matrix-js-sdk/lib/utils/encryptAESSecretStorageItem.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeMatrixCrypto as crypto } from '../../packages/client/src/platform/node-crypto.js';

/**
 * Compatibility proven with the peers' own code: matrix-sdk-crypto-wasm (vodozemac inside) for backups
 * and key export files, matrix-js-sdk for the recovery key encoding and secret-storage items; on good
 * data and on bad (the refusals below).
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

/**
 * Refusals through the peers' own code. Compatibility on good data says nothing about bad data: these
 * run tampered backups, export files, secret-storage items and recovery keys through the peer and
 * through us, and require the same verdict (refused by both, or the same bytes from both). With one of
 * our checks removed (the backup MAC, say), the peer refuses what we accept and these fail.
 */
type Verdict = { refused: true } | { refused: false; text: string };

/** Our verdict: a LatchkeyError is a refusal (with the expected code); bytes are read as the peer reads them. */
function ourVerdict(action: () => Uint8Array | string, code: string): Verdict {
  try {
    const out = action();
    return { refused: false, text: typeof out === 'string' ? out : new TextDecoder().decode(out) };
  } catch (error) {
    if (!(error instanceof LatchkeyError)) throw error;
    expect(error.code).toBe(code);
    return { refused: true };
  }
}

async function ourAsyncVerdict(action: () => Promise<Uint8Array>, code: string): Promise<Verdict> {
  try {
    return { refused: false, text: new TextDecoder().decode(await action()) };
  } catch (error) {
    if (!(error instanceof LatchkeyError)) throw error;
    expect(error.code).toBe(code);
    return { refused: true };
  }
}

/** The peer's verdict: any exception is a refusal. */
function peerVerdict(action: () => string): Verdict {
  try {
    return { refused: false, text: action() };
  } catch {
    return { refused: true };
  }
}

async function peerAsyncVerdict(action: () => Promise<string>): Promise<Verdict> {
  try {
    return { refused: false, text: await action() };
  } catch {
    return { refused: true };
  }
}

/** The bytes of unpadded base64 `text` with bit `bit` (counted from the first byte's top bit) flipped. */
function flipBit(text: string, bit: number): string {
  const bytes = fromBase64(text);
  const i = Math.floor(bit / 8) % bytes.length;
  bytes[i] = (bytes[i] as number) ^ (0x80 >> (bit % 8));
  return toBase64(bytes);
}

describe('tampered backup data: matrix-sdk-crypto-wasm and we refuse the same', () => {
  const key = () => wasm.BackupDecryptionKey.createRandomKey();
  const plaintext = JSON.stringify({ algorithm: 'm.megolm.v1.aes-sha2', session_key: 'x'.repeat(100) });

  function both(backupKey: wasm.BackupDecryptionKey, data: { ephemeral: string; mac: string; ciphertext: string }) {
    const privateKey = fromBase64(backupKey.toBase64());
    return {
      ours: ourVerdict(() => decryptFromBackup(crypto, privateKey, data), 'LK_BACKUP_DECRYPT_FAILED'),
      peer: peerVerdict(() => backupKey.decryptV1(data.ephemeral, data.mac, data.ciphertext)),
    };
  }

  it('refuses, as wasm does, a flipped MAC, ephemeral key or last ciphertext block, a wrong key and bad base64', () => {
    const backupKey = key();
    const good = encryptForBackup(crypto, fromBase64(backupKey.megolmV1PublicKey.publicKeyBase64), utf8(plaintext));
    const lastByte = fromBase64(good.ciphertext).length * 8 - 1;
    const cases: Record<string, [wasm.BackupDecryptionKey, typeof good]> = {
      'MAC, one bit': [backupKey, { ...good, mac: flipBit(good.mac, 13) }],
      'MAC, last bit': [backupKey, { ...good, mac: flipBit(good.mac, 63) }],
      'MAC, a longer wrong one': [backupKey, { ...good, mac: toBase64(new Uint8Array(32)) }],
      'ephemeral key, one bit': [backupKey, { ...good, ephemeral: flipBit(good.ephemeral, 3) }],
      'ephemeral key, all zero (low order)': [backupKey, { ...good, ephemeral: toBase64(new Uint8Array(32)) }],
      'ephemeral key, 31 bytes': [backupKey, { ...good, ephemeral: toBase64(fromBase64(good.ephemeral).slice(1)) }],
      'ciphertext, last bit (padding)': [backupKey, { ...good, ciphertext: flipBit(good.ciphertext, lastByte) }],
      'ciphertext, a block short': [
        backupKey,
        { ...good, ciphertext: toBase64(fromBase64(good.ciphertext).slice(0, -16)) },
      ],
      'ciphertext, not whole blocks': [
        backupKey,
        { ...good, ciphertext: toBase64(fromBase64(good.ciphertext).slice(0, -1)) },
      ],
      'MAC, a url-safe character': [backupKey, { ...good, mac: `-${good.mac.slice(1)}` }],
      'MAC, non-canonical trailing bits': [backupKey, { ...good, mac: nonCanonical(good.mac) }],
      'another backup key': [key(), good],
    };
    for (const [name, [decryptionKey, data]] of Object.entries(cases)) {
      const { ours, peer } = both(decryptionKey, data);
      expect({ name, peer }).toEqual({ name, peer: { refused: true } });
      expect({ name, ours }).toEqual({ name, ours: peer });
    }
    // Still good: what both accept is the same plaintext (wasm accepts a MAC prefix, and so do we).
    const truncated = { ...good, mac: toBase64(fromBase64(good.mac).slice(0, 4)) };
    expect(both(backupKey, truncated)).toEqual({
      ours: { refused: false, text: plaintext },
      peer: { refused: false, text: plaintext },
    });
  });

  it('any one flipped bit gets the same verdict from wasm and us (property)', () => {
    const backupKey = key();
    const publicKey = fromBase64(backupKey.megolmV1PublicKey.publicKeyBase64);
    fc.assert(
      fc.property(
        fc.constantFrom('ephemeral' as const, 'mac' as const, 'ciphertext' as const),
        fc.nat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (field, bit, eph) => {
          const good = encryptForBackup(crypto, publicKey, utf8(plaintext), eph);
          const bits = fromBase64(good[field]).length * 8;
          const { ours, peer } = both(backupKey, { ...good, [field]: flipBit(good[field], bit % bits) });
          expect(ours).toEqual(peer);
          // The MAC covers nothing but the shared secret (the libolm bug the spec keeps): a flipped MAC
          // bit is always refused; a flipped ciphertext bit often is not.
          if (field === 'mac') expect(ours.refused).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** `text` (unpadded base64) with non-zero unused trailing bits: same bytes to a lax decoder. */
function nonCanonical(text: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const last = alphabet.indexOf(text.at(-1) as string);
  return text.slice(0, -1) + alphabet[last | 1];
}

describe('tampered key export files: matrix-sdk-crypto-wasm and we refuse the same', () => {
  const passphrase = 'an export passphrase';

  /** Both verdicts; ours, when a refusal, must be `code` (a MAC that does not check is a wrong passphrase). */
  async function both(text: string, withPassphrase = passphrase, code = 'LK_KEY_EXPORT_BAD_PASSPHRASE') {
    const ours = await ourAsyncVerdict(() => decryptKeyExport(crypto, text, withPassphrase), code);
    const peer = peerVerdict(() => wasm.OlmMachine.decryptExportedRoomKeys(text, withPassphrase));
    return { ours, peer };
  }

  /** The file with one bit of its binary body flipped. */
  function tamper(text: string, bit: number): string {
    return armour(fromBase64(flipBit(toBase64(unarmour(text)), bit)));
  }

  it('refuses, as wasm does, any flipped bit of a file either of us wrote, and a wrong passphrase', async () => {
    const ourFile = await encryptKeyExport(crypto, utf8(rustExport.plaintext), passphrase, {
      salt: globalThis.crypto.getRandomValues(new Uint8Array(16)),
      iv: globalThis.crypto.getRandomValues(new Uint8Array(16)),
      rounds: 1000,
    });
    const theirFile = wasm.OlmMachine.encryptExportedRoomKeys(rustExport.plaintext, passphrase, 1000);
    for (const [writer, file] of Object.entries({ ours: ourFile, wasm: theirFile })) {
      const length = unarmour(file).length;
      // Every region: version, salt, IV, the rounds' low byte (a high one would ask for billions of
      // PBKDF2 rounds, which wasm would run), the ciphertext's first and last byte, the MAC.
      const bits = [0, 7, 8 * 1 + 2, 8 * 16 + 7, 8 * 17, 8 * 32 + 5, 8 * 36 + 7, 8 * 37, 8 * (length - 33) + 1];
      bits.push(8 * (length - 32), 8 * length - 1);
      for (const bit of bits) {
        const code = bit < 8 ? 'LK_KEY_EXPORT_INVALID' : 'LK_KEY_EXPORT_BAD_PASSPHRASE'; // the version byte
        const { ours, peer } = await both(tamper(file, bit), passphrase, code);
        expect({ writer, bit, peer }).toEqual({ writer, bit, peer: { refused: true } });
        expect({ writer, bit, ours }).toEqual({ writer, bit, ours: peer });
      }
      const wrong = await both(file, 'not the passphrase');
      expect(wrong).toEqual({ ours: { refused: true }, peer: { refused: true } });
      // Cut short by the MAC's last byte: refused by both.
      const short = await both(armour(unarmour(file).slice(0, -1)));
      expect(short).toEqual({ ours: { refused: true }, peer: { refused: true } });
    }
  });
});

describe('tampered secret-storage items: matrix-js-sdk and we refuse the same', () => {
  const name = 'm.megolm_backup.v1';
  const secret = 'dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo';

  async function both(item: EncryptedSecret, key: Uint8Array, itemName = name) {
    const ours = ourVerdict(() => decryptSecretBytes(crypto, key, itemName, item), 'LK_SECRET_DECRYPT_FAILED');
    const peer = await peerAsyncVerdict(() => jsDecryptSecret(item, key, itemName));
    return { ours, peer };
  }

  it('refuses, as matrix-js-sdk does, a flipped MAC or ciphertext bit, a wrong key or name; agrees on the IV', async () => {
    const key = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const theirs = await jsEncryptSecret(secret, key, name);
    const ours = encryptSecretBytes(
      crypto,
      key,
      name,
      utf8(secret),
      globalThis.crypto.getRandomValues(new Uint8Array(16)),
    );
    for (const [writer, item] of Object.entries({ theirs, ours })) {
      const refusals: Record<string, Promise<{ ours: Verdict; peer: Verdict }>> = {
        'MAC, first bit': both({ ...item, mac: flipBit(item.mac, 0) }, key),
        'MAC, last bit': both({ ...item, mac: flipBit(item.mac, 255) }, key),
        'MAC, truncated to 16 bytes': both({ ...item, mac: toBase64(fromBase64(item.mac).slice(0, 16)) }, key),
        'ciphertext, first bit': both({ ...item, ciphertext: flipBit(item.ciphertext, 0) }, key),
        'ciphertext, last bit': both({ ...item, ciphertext: flipBit(item.ciphertext, 8 * 43 - 1) }, key),
        'ciphertext, a byte short': both(
          { ...item, ciphertext: toBase64(fromBase64(item.ciphertext).slice(0, -1)) },
          key,
        ),
        'another key': both(item, globalThis.crypto.getRandomValues(new Uint8Array(32))),
        'another secret name': both(item, key, 'm.cross_signing.master'),
      };
      for (const [what, verdicts] of Object.entries(refusals)) {
        expect({ writer, what, ...(await verdicts) }).toEqual({
          writer,
          what,
          ours: { refused: true },
          peer: { refused: true },
        });
      }
      // The MAC covers the ciphertext only (spec), so a flipped IV bit decrypts, to the same wrong bytes.
      const iv = await both({ ...item, iv: flipBit(item.iv, 100) }, key);
      expect(iv.ours).toEqual(iv.peer);
      expect(iv.ours).not.toEqual({ refused: false, text: secret });
      expect(await both(item, key)).toEqual({
        ours: { refused: false, text: secret },
        peer: { refused: false, text: secret },
      });
    }
  });

  it('a key check refuses the keys matrix-js-sdk refuses: a wrong key, a flipped check MAC or IV', async () => {
    const jsSecretStorage = new ServerSideSecretStorageImpl(undefined as unknown as AccountDataClient, {});
    const key = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const other = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const theirs = await jsCalculateKeyCheck(key);
    const ours = makeKeyCheck(crypto, key, globalThis.crypto.getRandomValues(new Uint8Array(16)));
    for (const check of [theirs, ours]) {
      const description = { algorithm: 'm.secret_storage.v1.aes-hmac-sha2' as const, ...check };
      const cases: Array<[string, Uint8Array, typeof description, boolean]> = [
        ['the key', key, description, true],
        ['another key', other, description, false],
        ['a flipped MAC', key, { ...description, mac: flipBit(check.mac, 77) }, false],
        ['a flipped IV', key, { ...description, iv: flipBit(check.iv, 5) }, false],
      ];
      for (const [what, candidate, info, expected] of cases) {
        const peer = await jsSecretStorage.checkKey(candidate, { ...info, name: '', passphrase: undefined as never });
        expect({ what, peer }).toEqual({ what, peer: expected });
        expect({ what, ours: checkStorageKey(crypto, candidate, info) }).toEqual({ what, ours: expected });
      }
    }
  });
});

describe('wrong recovery keys: matrix-js-sdk and we refuse the same', () => {
  const verdicts = (text: string) => ({
    ours: ourVerdict(() => toBase64(decodeRecoveryKey(text)), 'LK_BAD_RECOVERY_KEY'),
    peer: peerVerdict(() => toBase64(jsDecodeRecoveryKey(text))),
  });

  it('refuses bad parity, prefix, length and characters, as matrix-js-sdk does', () => {
    const good = 'EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d';
    const cases = {
      parity: 'EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4e',
      prefix: 'AATpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRk',
      short: 'AATpRvZTnjck8YrhRAtwXLS84Nr2r9S9',
      'not base58': 'AATpRvZTnjck8YrhRAtwXLS84Nr0OIl',
      'one character dropped': good.slice(0, -1),
      'one character added': `${good}1`,
      lowercase: good.toLowerCase(),
      empty: '',
    };
    for (const [what, text] of Object.entries(cases)) {
      expect({ what, ...verdicts(text) }).toEqual({ what, ours: { refused: true }, peer: { refused: true } });
    }
    expect(verdicts(good)).toEqual({
      ours: { refused: false, text: 'dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo' },
      peer: { refused: false, text: 'dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo' },
    });
  });

  it('any one mistyped character gets the same verdict from matrix-js-sdk and us (property)', () => {
    const typed = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl';
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(), fc.nat(), (key, at, by) => {
        const text = encodeRecoveryKey(key).replace(/ /g, '');
        const i = at % text.length;
        const mistyped = text.slice(0, i) + typed[by % typed.length] + text.slice(i + 1);
        const { ours, peer } = verdicts(mistyped);
        expect(ours).toEqual(peer);
      }),
      { numRuns: 500 },
    );
  });
});
