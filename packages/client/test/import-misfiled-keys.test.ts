import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importRoomKeys, LocalKeystore, type RoomKey, randomBytes } from '@latchkey/client';
import {
  advanceRatchet,
  encryptKeyExport,
  fromBase64,
  type KB,
  parseExportedSession,
  toBase64,
  utf8,
} from '@latchkey/core';
import * as wasm from '@matrix-org/matrix-sdk-crypto-wasm';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { asyncLatchkeyErrorOf } from '../../../test/support/errors.js';
import { nodeMatrixCrypto } from '../src/platform/node-crypto.js';

/**
 * A key export file (or an app's own add) labels each key with its session id, and nothing binds the
 * label to the key but the key itself: a Megolm session id is the Ed25519 key inside the session key
 * (spec "m.megolm.v1.aes-sha2"). A malicious file could label another session's key as a session this
 * device holds; starting at an earlier index, it would outrank the held key and replace it, so messages
 * of that session would no longer decrypt. The keys here are real, made by matrix-sdk-crypto-wasm
 * (vodozemac inside), and the malicious file is encrypted by it too, as a Matrix client writes one.
 */

const ROOM = '!room:example.org';
const FILE_PASSPHRASE = 'export file passphrase';

/** A fresh wasm device's own Megolm session in ROOM, as its key export gives it. */
async function realSession(device: string): Promise<RoomKey> {
  const machine = await wasm.OlmMachine.initialize(
    new wasm.UserId(`@${device}:example.org`),
    new wasm.DeviceId(device),
  );
  await machine.shareRoomKey(new wasm.RoomId(ROOM), [], new wasm.EncryptionSettings());
  const [key] = JSON.parse(await machine.exportRoomKeys(() => true)) as RoomKey[];
  machine.close();
  return key as RoomKey;
}

/** The same session as `key`, starting at `index`: what a device that joined later holds. */
function startingAt(key: RoomKey, index: number): RoomKey {
  const { firstIndex, ratchet } = parseExportedSession(key.session_key);
  const bytes = fromBase64(key.session_key).slice();
  bytes.set(advanceRatchet(ratchet, firstIndex, index), 5);
  new DataView(bytes.buffer).setUint32(1, index);
  return { ...key, session_key: toBase64(bytes) };
}

/**
 * A key export file of `keys`, encrypted by core (the format's real crypto): matrix-sdk-crypto-wasm
 * will not write a session key that is none, which is the point of one of the entries here.
 */
const exportFile = (keys: RoomKey[]) =>
  encryptKeyExport(nodeMatrixCrypto, utf8(JSON.stringify(keys)), FILE_PASSPHRASE, {
    salt: randomBytes(16),
    iv: randomBytes(16),
    rounds: 1000,
  });

describe('imported and added room keys must carry their own session id', () => {
  /** The session the attacker aims at, from its first message, and as this device holds it (from index 5). */
  let victim: RoomKey;
  let held: RoomKey;
  /** Another real session: the attacker's, and an honest key the file also carries. */
  let attackers: RoomKey;
  let honest: RoomKey;
  let dir: string;
  let keystore: LocalKeystore;

  beforeAll(async () => {
    victim = await realSession('VICTIM');
    held = startingAt(victim, 5);
    attackers = await realSession('ATTACKER');
    honest = await realSession('HONEST');
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-misfiled-'));
    keystore = await LocalKeystore.open(join(dir, 'device.db'), randomBytes(32) as KB);
    expect(await keystore.addRoomKeys([{ key: held }])).toBe(1);
  });
  afterEach(async () => {
    await keystore.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const heldBytes = async () => (await keystore.getRoomKey(ROOM, held.session_id))?.key.session_key;

  it('an export file: another session labelled as the held one, and a key that is no session, are refused and counted', async () => {
    const relabelled: RoomKey = { ...attackers, session_id: held.session_id };
    const notASession: RoomKey = { ...attackers, session_id: 'not a session', session_key: toBase64(randomBytes(40)) };
    const file = await exportFile([relabelled, notASession, honest]);
    expect(await importRoomKeys(keystore, file, FILE_PASSPHRASE)).toEqual({
      total: 3,
      imported: 1,
      refused: 2,
      refusals: { 'session-id-mismatch': 1, 'session-key-invalid': 1 },
    });
    // The held key is byte for byte what it was; the honest one came in; nothing is filed as 'not a session'.
    expect(await heldBytes()).toBe(held.session_key);
    expect((await keystore.getRoomKey(ROOM, honest.session_id))?.key.session_key).toBe(honest.session_key);
    expect(await keystore.getRoomKey(ROOM, 'not a session')).toBeUndefined();
    expect(await keystore.count()).toEqual({ persisted: 2, ephemeral: 0 });
  });

  it('an honest export file still imports whole, with no refusals named', async () => {
    const file = await exportFile([victim, honest]);
    expect(await importRoomKeys(keystore, file, FILE_PASSPHRASE)).toEqual({ total: 2, imported: 2 });
  });

  it.each([
    ['stored', {}],
    ['held in memory only', { ephemeral: true }],
  ] as const)(
    'addRoomKeys (%s) refuses a batch with a misnamed key whole, with LK_ROOM_KEY_REFUSED',
    async (_how, options) => {
      const relabelled: RoomKey = { ...attackers, session_id: held.session_id };
      const error = await asyncLatchkeyErrorOf(keystore.addRoomKeys([{ key: honest }, { key: relabelled }], options));
      expect(error.code).toBe('LK_ROOM_KEY_REFUSED');
      expect(error.details).toEqual({ reason: 'session-id-mismatch', room_id: ROOM, session_id: held.session_id });
      expect(await heldBytes()).toBe(held.session_key);
      expect(await keystore.getRoomKey(ROOM, honest.session_id)).toBeUndefined();
      expect(await keystore.count()).toEqual({ persisted: 1, ephemeral: 0 });
    },
  );
});
