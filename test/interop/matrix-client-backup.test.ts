import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Session } from '@latchkey/client';
import { requestKeyBackupVersion } from 'matrix-js-sdk/lib/rust-crypto/backup.js';
import { encodeUri } from 'matrix-js-sdk/lib/utils.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  ClientPrefix,
  exportedKeys,
  MatrixError,
  type MatrixPeer,
  Method,
  makeSessions,
  matrixPeer,
  uploadPending,
} from '../support/matrix-client.js';
import { createTestDatabase } from '../support/postgres.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * A Matrix client uses Latchkey as its key-backup store (issue 7): matrix-js-sdk 36's own HTTP client,
 * backup manager and request processor, with the matrix-sdk-crypto-wasm it ships, talk to the
 * `/_matrix/client/v3/room_keys/...` routes of a real server on SQLite and on PostgreSQL. Keys are
 * real Megolm sessions made by that wasm, or keys encrypted by our core; what either side uploads, the
 * other restores.
 */

type KeyBackupData = {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: { ephemeral: string; ciphertext: string; mac: string };
};
type AllKeys = { rooms: Record<string, { sessions: Record<string, KeyBackupData> }> };
type VersionInfo = {
  algorithm: string;
  auth_data: { public_key: string };
  count: number;
  etag: string;
  version: string;
};

/** The MatrixError a call fails with (its status and body), or a failure of the test if it succeeds. */
async function matrixErrorOf(
  call: Promise<unknown>,
): Promise<{ status: number | undefined; data: Record<string, unknown> }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof MatrixError) return { status: error.httpStatus, data: error.data as Record<string, unknown> };
    throw error;
  }
  throw new Error('expected a MatrixError');
}

const backends = {
  sqlite: async () => startTestServer(),
  postgres: async () =>
    startTestServer({ databaseUrl: await createTestDatabase(inject('postgresUrl'), 'matrix_client_backup') }),
};

describe.each(['sqlite', 'postgres'] as const)('a Matrix client keeps its key backup on Latchkey (%s)', (backend) => {
  let server: TestServer;
  let dir: string;
  let counter = 0;
  const peers: MatrixPeer[] = [];

  /** A fresh verified account, logged in through our SDK: its token is what the Matrix client presents. */
  async function account(): Promise<Session> {
    counter++;
    const email = `matrix${counter}@example.com`;
    const { client } = await createVerifiedAccount(server, email, 'matrix password');
    return client.logIn(email, 'matrix password');
  }
  async function peer(token: string, options: Parameters<typeof matrixPeer>[2] = {}): Promise<MatrixPeer> {
    const made = await matrixPeer(server.url, token, options);
    peers.push(made);
    return made;
  }
  const v3 = { prefix: ClientPrefix.V3 };
  /** The spec's key paths, escaped by the client's own encodeUri (as its backup calls build them). */
  const keysPath = (version: string, roomId?: string, sessionId?: string) => ({
    path:
      sessionId !== undefined
        ? encodeUri('/room_keys/keys/$roomId/$sessionId', { $roomId: roomId as string, $sessionId: sessionId })
        : roomId !== undefined
          ? encodeUri('/room_keys/keys/$roomId', { $roomId: roomId })
          : '/room_keys/keys',
    queryData: { version },
  });
  const get = <T>(p: MatrixPeer, at: { path: string; queryData: Record<string, string> }) =>
    p.client.http.authedRequest<T>(Method.Get, at.path, at.queryData, undefined, v3);

  beforeAll(async () => {
    server = await backends[backend]();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-matrix-'));
  });
  afterAll(async () => {
    for (const p of peers) p.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a version with the client’s backup manager and reads it back as the spec shapes it', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    // No backup yet: the client's own check reads M_NOT_FOUND as "none".
    expect(await p.client.getKeyBackupVersion()).toBeNull();
    const created = await p.backup.setupKeyBackup(async () => {});
    expect(created.version).toBe('1');
    const expected = {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: { public_key: created.decryptionKey.megolmV1PublicKey.publicKeyBase64 },
      count: 0,
      etag: '0',
      version: '1',
    };
    // getKeyBackupVersion also runs the client's own check of the shape (BackupManager.checkBackupVersion).
    expect(await p.client.getKeyBackupVersion()).toEqual(expected);
    expect(await requestKeyBackupVersion(p.client.http, '1')).toEqual(expected);
    // An unknown version, whether a number or an opaque string, is M_NOT_FOUND (the client: null).
    expect(await requestKeyBackupVersion(p.client.http, '99')).toBeNull();
    expect(
      await matrixErrorOf(p.client.http.authedRequest(Method.Get, '/room_keys/version/abc', undefined, undefined, v3)),
    ).toEqual({
      status: 404,
      data: { errcode: 'M_NOT_FOUND', error: 'Unknown backup version.' },
    });
  });

  it('uploads real Megolm keys through the client’s request processor and reads them back at all three levels', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    const rooms = ['!alpha:example.org', '!beta:example.org', '!gamma:example.org'];
    await makeSessions(p, rooms, 2);
    const { version, decryptionKey } = await p.backup.setupKeyBackup(async () => {});
    await p.machine.enableBackupV1(decryptionKey.megolmV1PublicKey.publicKeyBase64, version);
    // The machine parses each answer ({etag, count}) in markRequestAsSent: a wrong shape would throw here.
    const bodies: AllKeys[] = [];
    const original = p.requests.makeOutgoingRequest.bind(p.requests);
    p.requests.makeOutgoingRequest = async (request, ...rest) => {
      bodies.push(JSON.parse((request as { body: string }).body) as AllKeys);
      return original(request, ...rest);
    };
    expect(await uploadPending(p)).toBeGreaterThan(0);
    const counts = await p.machine.roomKeyCounts();
    expect(counts).toMatchObject({ total: 6, backedUp: 6 });

    const uploaded: AllKeys = { rooms: {} };
    for (const body of bodies) {
      for (const [roomId, room] of Object.entries(body.rooms)) {
        uploaded.rooms[roomId] ??= { sessions: {} };
        Object.assign(uploaded.rooms[roomId].sessions, room.sessions);
      }
    }
    // Level 1: the whole backup, unpaged, by the client's own download call: the uploaded bytes exactly.
    // (RustBackupManager.downloadKeyBackup is this very call, but private in the typings.)
    const all = await get<AllKeys>(p, keysPath(version));
    expect(all).toEqual(uploaded);
    expect(Object.keys(all.rooms).sort()).toEqual(rooms);
    // Level 2: one room.
    const alpha = keysPath(version, '!alpha:example.org');
    expect(await get(p, alpha)).toEqual(uploaded.rooms['!alpha:example.org']);
    // Level 3: one session.
    const [sessionId, key] = Object.entries(uploaded.rooms['!beta:example.org']?.sessions ?? {})[0] ?? [];
    const one = keysPath(version, '!beta:example.org', sessionId);
    expect(await get(p, one)).toEqual(key);
    // The version's count and etag, as the spec has them after the uploads.
    const info = (await p.client.getKeyBackupVersion()) as VersionInfo;
    expect(info.count).toBe(6);

    // A new device of the same user restores everything with the client's own restore and decryptor.
    const other = await peer(session.state.token, { deviceId: 'OTHER' });
    const restored = await other.backup.restoreKeyBackup(version, other.backup.createBackupDecryptor(decryptionKey));
    expect(restored).toMatchObject({ total: 6, imported: 6 });
    const sessionKeys = async (q: MatrixPeer) =>
      (await exportedKeys(q)).map((k) => `${k.room_id}|${k.session_id}|${k.session_key}`).sort();
    expect(await sessionKeys(other)).toEqual(await sessionKeys(p));
  });
});
