import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportRoomKeys, importRoomKeys, type Session, Transport } from '@latchkey/client';
import {
  type BackupPage,
  type BackupVersionInfoBody,
  decryptKeyExport,
  encryptForBackup,
  fromBase64,
  fromUtf8,
  toBase64,
  utf8,
} from '@latchkey/core';
import * as wasm from '@matrix-org/matrix-sdk-crypto-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeMatrixCrypto as crypto } from '../../packages/client/src/platform/node-crypto.js';
import { makeRoomKey } from '../support/room-keys.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * A session's plaintext may carry fields this SDK does not know: another client's extension, a field
 * of a later spec version. Decoders must ignore them (spec), but a client that drops them on the way
 * through loses the other client's data for good. Each leg is checked on the bytes it produces:
 * restore → keystore → export file → import → upload to a new backup version.
 */

// Fields we do not know, with nesting, a non-ASCII name and a name that is special to JavaScript.
const UNKNOWN =
  '"org.example.unknown":{"nested":[1,"two",null,{"deep":true}]},"org.exämple.ünïcode":"välue","__proto__":{"polluted":"no"}';
const unknownFields = JSON.parse(`{${UNKNOWN}}`) as Record<string, unknown>;

describe('unknown fields of a session survive restore, the keystore, export, import and re-upload', () => {
  let server: TestServer;
  let dir: string;
  const email = 'unknown-fields@example.com';
  const password = 'unknown fields password';
  const key = makeRoomKey(1, 1);
  /** The plaintext another client backed up: the known fields in its own order, then ours unknown. */
  const plaintext = `{"algorithm":"m.megolm.v1.aes-sha2","forwarding_curve25519_key_chain":[],"room_id":${JSON.stringify(key.room_id)},"sender_claimed_keys":${JSON.stringify(key.sender_claimed_keys)},"sender_key":"${key.sender_key}","session_id":${JSON.stringify(key.session_id)},"session_key":"${key.session_key}",${UNKNOWN}}`;

  beforeAll(async () => {
    await wasm.initAsync();
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-unknown-'));
    await createVerifiedAccount(server, email, password);
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (session: Session) => {
    const transport = new Transport(server.url);
    return <T>(method: string, path: string, body?: unknown) =>
      transport.request<T>(method, path, { token: session.state.token, ...(body === undefined ? {} : { body }) });
  };

  /** Expects `text` (JSON of one session) to hold the unknown fields with exactly the bytes they came with. */
  function expectUnknownBytes(text: string) {
    expect(text).toContain('"org.example.unknown":{"nested":[1,"two",null,{"deep":true}]}');
    expect(text).toContain('"org.exämple.ünïcode":"välue"');
    expect(text).toContain('"__proto__":{"polluted":"no"}');
  }

  /** Expects a stored or parsed key to carry the unknown fields as its own, and nothing to be polluted. */
  function expectUnknownFields(record: Record<string, unknown> | undefined) {
    expect(record).toBeDefined();
    for (const [field, value] of Object.entries(unknownFields)) {
      expect(Object.hasOwn(record as object, field)).toBe(true);
      expect((record as Record<string, unknown>)[field]).toEqual(value);
    }
    expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }

  it('keeps them through every leg, byte for byte', async () => {
    // Another client backs the key up, with the unknown fields inside the encrypted plaintext.
    const first = await server.client().logIn(email, password);
    const firstStore = await first.openKeystore(join(dir, 'first.db'));
    const backup = first.keyBackup(firstStore);
    const { recoveryKey, version } = await backup.enable();
    const info = await call(first)<BackupVersionInfoBody>('GET', '/v1/backup/version');
    await call(first)('PUT', `/v1/backup/keys?version=${version}`, {
      rooms: {
        [key.room_id]: {
          sessions: {
            [key.session_id]: {
              first_message_index: 0,
              forwarded_count: 0,
              is_verified: false,
              session_data: encryptForBackup(crypto, fromBase64(info.auth_data.public_key), utf8(plaintext)),
            },
          },
        },
      },
    });
    await firstStore.close();
    await first.logOut();

    // Leg 1, restore: the key in the keystore carries the fields.
    const session = await server.client().logIn(email, password);
    const file = join(dir, 'restored.db');
    let keystore = await session.openKeystore(file);
    expect(await session.keyBackup(keystore).restore({ recoveryKey })).toMatchObject({ imported: 1, failed: 0 });
    expectUnknownFields((await keystore.getRoomKey(key.room_id, key.session_id))?.key);

    // Leg 2, the keystore: sealed to disk and opened again, they are still there.
    await keystore.close();
    keystore = await session.openKeystore(file);
    const reopened = await keystore.getRoomKey(key.room_id, key.session_id);
    expectUnknownFields(reopened?.key);
    expect(reopened?.key).toMatchObject(key);

    // Leg 3, export: the file's plaintext holds the same bytes.
    const { text } = await exportRoomKeys(keystore, 'export passphrase', 1000);
    const exported = fromUtf8(await decryptKeyExport(crypto, text, 'export passphrase'));
    expectUnknownBytes(exported);
    const [entry] = JSON.parse(exported) as Array<Record<string, unknown>>;
    expect(entry).toMatchObject({ room_id: key.room_id, session_id: key.session_id, session_key: key.session_key });

    // Leg 4, import into another keystore: kept.
    const other = await session.openKeystore(join(dir, 'imported.db'));
    expect(await importRoomKeys(other, text, 'export passphrase')).toEqual({ total: 1, imported: 1 });
    expectUnknownFields((await other.getRoomKey(key.room_id, key.session_id))?.key);
    await other.close();

    // Leg 5, upload to a new backup version: wasm decrypts a plaintext with the same bytes.
    const replacing = session.keyBackup(keystore);
    const enabled = await replacing.enable({ replace: true, carryOverWith: { recoveryKey } });
    expect(enabled.replaced).toMatchObject({ carriedOver: 1, unreadable: 0 });
    expect(await replacing.uploadPending()).toEqual({ uploaded: 1, version: enabled.version });
    const newInfo = await call(session)<BackupVersionInfoBody>('GET', '/v1/backup/version');
    const backupKey = await replacing.unlock({ recoveryKey: enabled.recoveryKey }, newInfo);
    const decryptionKey = wasm.BackupDecryptionKey.fromBase64(toBase64(backupKey));
    backupKey.fill(0);
    const page = await call(session)<BackupPage>('GET', `/v1/backup/keys?version=${enabled.version}`);
    const [item] = page.keys;
    if (page.keys.length !== 1 || item === undefined) throw new Error(`expected one key, got ${page.keys.length}`);
    const { ephemeral, mac, ciphertext } = item.session_data;
    const uploaded = decryptionKey.decryptV1(ephemeral, mac, ciphertext);
    expectUnknownBytes(uploaded);
    // Known fields as we write them (matrix-rust-sdk's order, no room or session id), then the unknown.
    expect(uploaded).toBe(
      `{"algorithm":"m.megolm.v1.aes-sha2","sender_key":"${key.sender_key}","session_key":"${key.session_key}","sender_claimed_keys":${JSON.stringify(key.sender_claimed_keys)},"forwarding_curve25519_key_chain":[],${UNKNOWN}}`,
    );
    await keystore.close();
    await session.logOut();
  });
});
