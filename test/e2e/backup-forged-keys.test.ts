import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalKeystore, type RoomKey, type Session, Transport } from '@latchkey/client';
import {
  advanceRatchet,
  type BackupVersionInfoBody,
  encryptForBackup,
  fromBase64,
  parseExportedSession,
  toBackupPlaintext,
  toBase64,
  utf8,
} from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nodeMatrixCrypto as crypto } from '../../packages/client/src/platform/node-crypto.js';
import { cli, cliJson, lines } from '../support/cli-process.js';
import { createTestDatabase } from '../support/postgres.js';
import { makeRoomKey } from '../support/room-keys.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * Issue 8, as the attack over HTTP: whoever holds the backup's public key (the server does: it is in
 * auth_data) can write backup entries that decrypt, because the format's MAC covers nothing, and every
 * label beside the ciphertext (room_id, session_id, is_verified, forwarded_count) is unauthenticated.
 * The attacker here has only the backup version's public key and a way to write entries (the server's
 * own store, reached as the account's session would); the honest device then restores. Its key stays
 * as it was, nothing comes in verified, and entries filed under a name not their own are refused and
 * counted. On SQLite and on PostgreSQL: the server stores and serves what it is given on both.
 */

const databaseUrlFor = {
  sqlite: (dir: string) => Promise.resolve(`sqlite:${join(dir, 'latchkey.db')}`),
  postgres: () => createTestDatabase(inject('postgresUrl'), 'backup_forged'),
} as const;

const random = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));

/** `key` with its ratchet advanced to start at `index`: the same session, as a later receiver holds it. */
function laterCopy(key: RoomKey, index: number): RoomKey {
  const { firstIndex, ratchet } = parseExportedSession(key.session_key);
  const bytes = fromBase64(key.session_key).slice();
  bytes.set(advanceRatchet(ratchet, firstIndex, index), 5);
  new DataView(bytes.buffer).setUint32(1, index);
  return { ...key, session_key: toBase64(bytes) };
}

/**
 * A session key claiming `sessionId`'s Ed25519 key, with a ratchet the attacker made up, starting at
 * `index`: it passes the session-id check, but is not connected to the real session.
 */
function forgedSessionKey(sessionId: string, index: number): string {
  const bytes = new Uint8Array(165);
  bytes[0] = 0x01;
  new DataView(bytes.buffer).setUint32(1, index);
  bytes.set(random(128), 5);
  bytes.set(fromBase64(sessionId), 133);
  return toBase64(bytes);
}

/** Labels and plaintext of one entry, as the attacker writes it. */
interface Forged {
  roomId: string;
  sessionId: string;
  plaintext: string;
  is_verified: boolean;
  first_message_index?: number;
}

describe.each(['sqlite', 'postgres'] as const)('forged backup entries against a restore (%s)', (backend) => {
  let server: TestServer;
  let dir: string;
  const email = `forged-${backend}@example.com`;
  const password = 'forged password';
  /** The honest device's key, which it holds and has backed up. */
  const honest = makeRoomKey(1, 1);
  /** Another honest key, held by the device at a later index, backed up from index 0 by another device. */
  const shared = makeRoomKey(2, 1);
  let session: Session;
  let keystore: LocalKeystore;

  const call = () => {
    const transport = new Transport(server.url);
    return <T>(method: string, path: string, body?: unknown) =>
      transport.request<T>(method, path, { token: session.state.token, ...(body === undefined ? {} : { body }) });
  };

  /** The attacker's write: entries encrypted to the public key from auth_data, with the labels it chooses. */
  async function writeForged(entries: Forged[]): Promise<void> {
    const api = call();
    const info = await api<BackupVersionInfoBody>('GET', '/v1/backup/version');
    const publicKey = fromBase64(info.auth_data.public_key);
    const rooms: Record<string, { sessions: Record<string, unknown> }> = {};
    for (const entry of entries) {
      const room = rooms[entry.roomId] ?? { sessions: {} };
      rooms[entry.roomId] = room;
      room.sessions[entry.sessionId] = {
        first_message_index: entry.first_message_index ?? 0,
        forwarded_count: 0,
        is_verified: entry.is_verified,
        session_data: encryptForBackup(crypto, publicKey, utf8(entry.plaintext)),
      };
    }
    await api('PUT', `/v1/backup/keys?version=${encodeURIComponent(info.version)}`, { rooms });
  }

  const attackerKey = (roomId: string, sessionKey?: string): RoomKey => {
    const key = makeRoomKey(9, 9);
    return {
      ...key,
      room_id: roomId,
      ...(sessionKey === undefined ? {} : { session_key: sessionKey }),
      sender_claimed_keys: { ed25519: 'the attacker chose this' },
    };
  };

  // The attacker's entries: each names what it targets.
  const overHonest = () => attackerKey(honest.room_id, forgedSessionKey(honest.session_id, 0));
  const fresh = attackerKey('!fresh:example.org');
  const misfiled = attackerKey('!misfiled:example.org');
  const notItsSession = makeRoomKey(3, 3).session_id;
  const otherRoom = attackerKey('!other:example.org');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-forged-'));
    server = await startTestServer({ databaseUrl: await databaseUrlFor[backend](dir) });
    await createVerifiedAccount(server, email, password);

    // Another device backs up `shared` from its first message; then this device, which holds the
    // honest key and a later copy of `shared`, joins the same backup.
    const other = await server.client().logIn(email, password);
    const otherStore = await other.openKeystore(join(dir, 'other.db'));
    await otherStore.addRoomKeys([{ key: shared }]);
    const otherBackup = other.keyBackup(otherStore);
    await otherBackup.enable();
    await otherBackup.uploadPending();
    await otherStore.close();
    await other.logOut();

    session = await server.client().logIn(email, password);
    keystore = await session.openKeystore(join(dir, 'honest.db'));
    await keystore.addRoomKeys([{ key: honest }, { key: laterCopy(shared, 7) }]);
    await session.keyBackup(keystore).uploadPending();

    await writeForged([
      // The script: the honest room and session id, a key of the attacker's, marked verified.
      {
        roomId: honest.room_id,
        sessionId: honest.session_id,
        plaintext: toBackupPlaintext(overHonest()),
        is_verified: true,
      },
      // A key the device does not hold, marked verified: it may come in, but never as verified.
      { roomId: fresh.room_id, sessionId: fresh.session_id, plaintext: toBackupPlaintext(fresh), is_verified: true },
      // Filed under a session id that is not the key inside its session_key.
      { roomId: misfiled.room_id, sessionId: notItsSession, plaintext: toBackupPlaintext(misfiled), is_verified: true },
      // A plaintext naming another room than the one it is filed under.
      {
        roomId: honest.room_id,
        sessionId: otherRoom.session_id,
        plaintext: JSON.stringify({ ...JSON.parse(toBackupPlaintext(otherRoom)), room_id: otherRoom.room_id }),
        is_verified: false,
      },
      // JSON that is no object at all: counted as not decrypting, and the restore goes on.
      { roomId: '!junk:example.org', sessionId: 'junk', plaintext: 'null', is_verified: true },
    ]);
  });
  afterAll(async () => {
    await keystore.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the honest device restores: its key unchanged, nothing verified, the misfiled entries refused and counted', async () => {
    const before = await keystore.getRoomKey(honest.room_id, honest.session_id);
    expect(before?.key).toEqual(honest);
    const result = await session.keyBackup(keystore).restore({ trustedDevice: true });

    // The honest key: the same bytes, the same sender, not verified by the server's say-so.
    const after = await keystore.getRoomKey(honest.room_id, honest.session_id);
    expect(after?.key).toEqual(honest);
    expect(after?.meta.verified).not.toBe(true);
    expect(after?.key.sender_claimed_keys).toEqual(honest.sender_claimed_keys);

    // The key it did not hold came in, unverified, though the server said verified.
    const taken = await keystore.getRoomKey(fresh.room_id, fresh.session_id);
    expect(taken?.key.session_key).toBe(fresh.session_key);
    expect(taken?.meta.verified).not.toBe(true);

    // The misfiled entries are refused, and the result says how many and why.
    expect(result).toMatchObject({ total: 6, failed: 1, refused: 2 });
    expect(result.refusals).toEqual({ 'session-id-mismatch': 1, 'room-id-mismatch': 1 });
    // The refused entries are nowhere, under the labels they were filed under or their own.
    expect(await keystore.getRoomKey(misfiled.room_id, notItsSession)).toBeUndefined();
    expect(await keystore.getRoomKey(misfiled.room_id, misfiled.session_id)).toBeUndefined();
    expect(await keystore.getRoomKey(honest.room_id, otherRoom.session_id)).toBeUndefined();
    expect(await keystore.getRoomKey(otherRoom.room_id, otherRoom.session_id)).toBeUndefined();

    // The backup's copy of `shared` is the same session from an earlier message: that one is taken.
    const improved = await keystore.getRoomKey(shared.room_id, shared.session_id);
    expect(improved?.key).toEqual(shared);
    expect(result.imported).toBe(2); // `fresh`, and the earlier copy of `shared`

    // Nothing on this device is verified that was not before.
    for (const stored of await keystore.persistedRoomKeys()) expect(stored.meta.verified).not.toBe(true);
  });

  it('a new device restores: the forgery over the honest id is not verified, and the refusals are the same', async () => {
    const fresh = await server.client().logIn(email, password);
    const newStore = await fresh.openKeystore(join(dir, 'new-device.db'));
    const result = await fresh.keyBackup(newStore).restore({ trustedDevice: true });
    const held = await newStore.persistedRoomKeys();
    for (const stored of held) expect(stored.meta.verified).not.toBe(true);
    expect(held).toHaveLength(3);
    expect(result).toMatchObject({ total: 6, failed: 1, refused: 2, imported: 3 });
    await newStore.close();
    await fresh.logOut();
  });

  it('the CLI says how many were refused and why, for scripts and for people', async () => {
    const home = join(dir, `cli-${backend}`);
    await cliJson(['account', 'login', email, '--server', server.url], home, lines(password));
    expect(await cliJson(['backup', 'restore', '--trusted-device'], home, lines(password))).toMatchObject({
      total: 6,
      imported: 3,
      failed: 1,
      refused: 2,
      refusals: { 'session-id-mismatch': 1, 'room-id-mismatch': 1 },
    });
    const human = await cli(['backup', 'restore', '--trusted-device'], home, lines(password));
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(
      '2 refused as filed under another room or session (session-id-mismatch: 1, room-id-mismatch: 1)',
    );
  });
});
