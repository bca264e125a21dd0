import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RoomKey, Session } from '@latchkey/client';
import { canonicalJson, encryptForBackup, toBase64, utf8 } from '@latchkey/core';
import { CryptoEvent } from 'matrix-js-sdk/lib/crypto-api/index.js';
import { requestKeyBackupVersion } from 'matrix-js-sdk/lib/rust-crypto/backup.js';
import { encodeUri } from 'matrix-js-sdk/lib/utils.js';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { nodeMatrixCrypto } from '../../packages/client/src/platform/node-crypto.js';
import { UNPAGED_BATCH } from '../../packages/server/src/modules/backup/matrix-routes.js';
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
import { makeRoomKeys } from '../support/room-keys.js';
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

/** A random Curve25519 public key, for versions whose keys these tests never decrypt. */
const randomKey = () => nodeMatrixCrypto.x25519PublicKey(globalThis.crypto.getRandomValues(new Uint8Array(32)));

/** Signs auth_data with the peer's device key, as matrix-js-sdk's RustCrypto.signObject does. */
async function signWithDevice(p: MatrixPeer, authData: object): Promise<void> {
  const { signatures: _ignored, ...unsigned } = authData as { signatures?: unknown };
  const signatures = await p.machine.sign(canonicalJson(unsigned));
  (authData as { signatures?: unknown }).signatures = JSON.parse(signatures.asJSON());
}

/** Runs `start` with the backup loop's random start delay (0 to 10 s) at 0. */
async function withoutStartDelay<T>(start: () => Promise<T>): Promise<T> {
  const random = vi.spyOn(Math, 'random').mockReturnValue(0);
  try {
    return await start();
  } finally {
    random.mockRestore();
  }
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

  it('refuses writes to an old version with M_WRONG_ROOM_KEYS_VERSION naming the current one, and the client reacts', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    await makeSessions(p, ['!old:example.org']);
    // Signed by the device, so the client trusts the backup and its own loop uploads to it.
    const first = await p.backup.setupKeyBackup((authData) => signWithDevice(p, authData));
    await withoutStartDelay(() => p.backup.checkKeyBackupAndEnable(true));
    await vi.waitFor(async () => expect((await p.machine.roomKeyCounts()).backedUp).toBe(1));
    // Another device makes a newer version (a bare POST: setupKeyBackup would delete the old one first).
    const newer = await p.client.http.authedRequest<{ version: string }>(
      Method.Post,
      '/room_keys/version',
      undefined,
      { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: toBase64(randomKey()) } },
      v3,
    );
    expect(newer).toEqual({ version: '2' });
    const stale = keysPath(first.version, '!old:example.org', 'sid');
    // The key the loop stored in version 1, sent again by hand.
    const stored = await get<AllKeys>(p, keysPath(first.version));
    const body = Object.values(stored.rooms['!old:example.org']?.sessions ?? {})[0];
    expect(body).toBeDefined();
    expect(await matrixErrorOf(p.client.http.authedRequest(Method.Put, stale.path, stale.queryData, body, v3))).toEqual(
      {
        status: 403,
        data: { errcode: 'M_WRONG_ROOM_KEYS_VERSION', error: 'Wrong backup version.', current_version: '2' },
      },
    );
    // A version that never existed is M_NOT_FOUND, not a wrong version (as Synapse answers).
    const never = keysPath('7', '!old:example.org', 'sid');
    expect(
      await matrixErrorOf(p.client.http.authedRequest(Method.Put, never.path, never.queryData, body, v3)),
    ).toMatchObject({
      status: 404,
      data: { errcode: 'M_NOT_FOUND' },
    });
    // The client's own loop, with a new key for the old version, gets the 403 and gives that version up
    // as the spec intends (KeyBackupFailed with the code), rather than retrying or dropping keys silently.
    const failed = new Promise<string>((resolve) => p.backup.once(CryptoEvent.KeyBackupFailed, resolve));
    await makeSessions(p, ['!new:example.org']);
    await withoutStartDelay(() => p.backup.maybeUploadKey());
    expect(await failed).toBe('M_WRONG_ROOM_KEYS_VERSION');
    expect((await requestKeyBackupVersion(p.client.http, first.version))?.count).toBe(1);
    expect((await requestKeyBackupVersion(p.client.http, '2'))?.count).toBe(0);
  });

  it('answers unknown keys, rooms and versions as the spec does', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    const { version } = await p.client.http.authedRequest<{ version: string }>(
      Method.Post,
      '/room_keys/version',
      undefined,
      { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: toBase64(randomKey()) } },
      v3,
    );
    expect(await get(p, keysPath(version))).toEqual({ rooms: {} });
    expect(await get(p, keysPath(version, '!none:example.org'))).toEqual({ sessions: {} });
    expect(await matrixErrorOf(get(p, keysPath(version, '!none:example.org', 'nope')))).toEqual({
      status: 404,
      data: { errcode: 'M_NOT_FOUND', error: 'Key not found.' },
    });
    for (const at of [keysPath('8'), keysPath('8', '!none:example.org'), keysPath('8', '!r', 's'), keysPath('x1')]) {
      expect(await matrixErrorOf(get(p, at))).toEqual({
        status: 404,
        data: { errcode: 'M_NOT_FOUND', error: 'Unknown backup version.' },
      });
    }
    expect(
      await matrixErrorOf(p.client.http.authedRequest(Method.Delete, '/room_keys/version/8', undefined, undefined, v3)),
    ).toMatchObject({
      status: 404,
      data: { errcode: 'M_NOT_FOUND' },
    });
  });

  it('takes the Latchkey token as a Bearer header or as ?access_token=, and refuses others with M_UNKNOWN_TOKEN / M_MISSING_TOKEN', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    await p.backup.setupKeyBackup(async () => {});
    const byQuery = await peer(session.state.token, { useAuthorizationHeader: false });
    expect((await byQuery.client.getKeyBackupVersion())?.version).toBe('1');
    // A token of the right form that no session has, and one that has been logged out.
    const unknown = await peer('A'.repeat(43));
    expect(await matrixErrorOf(unknown.client.getKeyBackupVersion())).toEqual({
      status: 401,
      data: { errcode: 'M_UNKNOWN_TOKEN', error: 'Unknown or expired access token.', soft_logout: false },
    });
    const malformed = await peer('not a latchkey token', { useAuthorizationHeader: false });
    expect((await matrixErrorOf(malformed.client.getKeyBackupVersion())).data.errcode).toBe('M_UNKNOWN_TOKEN');
    const missing = await peer('');
    expect(await matrixErrorOf(missing.client.getKeyBackupVersion())).toEqual({
      status: 401,
      data: { errcode: 'M_MISSING_TOKEN', error: 'Missing access token.' },
    });
    const ended = await account();
    const endedPeer = await peer(ended.state.token);
    await ended.logOut();
    expect((await matrixErrorOf(endedPeer.client.getKeyBackupVersion())).data.errcode).toBe('M_UNKNOWN_TOKEN');
    // Another account's token sees none of this account's backup.
    const stranger = await peer((await account()).state.token);
    expect(await stranger.client.getKeyBackupVersion()).toBeNull();
    expect((await matrixErrorOf(get(stranger, keysPath('1')))).data.errcode).toBe('M_NOT_FOUND');
  });

  it('answers malformed requests with M_NOT_JSON, M_BAD_JSON, M_MISSING_PARAM, M_INVALID_PARAM and M_UNRECOGNIZED', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    const { version } = await p.backup.setupKeyBackup(async () => {});
    const raw = (method: Method, path: string, query: Record<string, string> | undefined, body?: string) =>
      matrixErrorOf(
        p.client.http.authedRequest(method, path, query, body, {
          ...v3,
          json: false,
          headers: { 'Content-Type': 'application/json' },
        }),
      );
    const code = async (call: ReturnType<typeof raw>) => {
      const { status, data } = await call;
      return [status, data.errcode];
    };
    expect(await code(raw(Method.Put, '/room_keys/keys', { version }, '{"rooms":'))).toEqual([400, 'M_NOT_JSON']);
    const wrongType = JSON.stringify({ rooms: { '!r:x': { sessions: { s: { first_message_index: '0' } } } } });
    expect(await code(raw(Method.Put, '/room_keys/keys', { version }, wrongType))).toEqual([400, 'M_BAD_JSON']);
    expect(await code(raw(Method.Get, '/room_keys/keys', undefined))).toEqual([400, 'M_MISSING_PARAM']);
    const otherAlgorithm = JSON.stringify({
      algorithm: 'm.megolm_backup.v2',
      auth_data: { public_key: toBase64(randomKey()) },
    });
    expect(await code(raw(Method.Put, `/room_keys/version/${version}`, undefined, otherAlgorithm))).toEqual([
      400,
      'M_INVALID_PARAM',
    ]);
    const otherVersion = JSON.stringify({
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: { public_key: toBase64(randomKey()) },
      version: '5',
    });
    expect(await code(raw(Method.Put, `/room_keys/version/${version}`, undefined, otherVersion))).toEqual([
      400,
      'M_INVALID_PARAM',
    ]);
    const shortKey = JSON.stringify({
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: { public_key: 'AAAA' },
    });
    expect(await code(raw(Method.Post, '/room_keys/version', undefined, shortKey))).toEqual([400, 'M_INVALID_PARAM']);
    expect(await code(raw(Method.Get, '/room_keys/nothing', undefined))).toEqual([404, 'M_UNRECOGNIZED']);
    // Nothing above changed the version.
    expect(await p.client.getKeyBackupVersion()).toMatchObject({ version, count: 0, etag: '0' });
  });

  it('refuses hostile input on the key routes with a 4xx and no change: long or NUL ids, deep or oversized bodies', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    const { version } = await p.backup.setupKeyBackup(async () => {});
    const key = {
      first_message_index: 0,
      forwarded_count: 0,
      is_verified: false,
      session_data: { ephemeral: 'e', ciphertext: 'c', mac: 'm' },
    };
    const long = 'x'.repeat(256);
    let deep: unknown = key;
    for (let i = 0; i < 40; i++) deep = { nested: deep };
    const tooMany = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`s${i}`, key]));
    const cases: Array<[string, Method, string, Record<string, string>, unknown, number, string]> = [
      ['a 256-character room id', Method.Put, `/room_keys/keys/${long}/s`, { version }, key, 400, 'M_INVALID_PARAM'],
      [
        'a 256-character session id in a body',
        Method.Put,
        '/room_keys/keys/!r',
        { version },
        { sessions: { [long]: key } },
        400,
        'M_BAD_JSON',
      ],
      [
        'U+0000 in a room id',
        Method.Put,
        `/room_keys/keys/${encodeURIComponent('!r\u0000')}/s`,
        { version },
        key,
        400,
        'M_INVALID_PARAM',
      ],
      [
        'a lone surrogate in a body key',
        Method.Put,
        '/room_keys/keys',
        { version },
        { rooms: { '!r\ud800': { sessions: { s: key } } } },
        400,
        'M_INVALID_PARAM',
      ],
      ['a body nested 40 deep', Method.Put, '/room_keys/keys/!r/s', { version }, deep, 400, 'M_INVALID_PARAM'],
      [
        '1,001 keys in one PUT',
        Method.Put,
        '/room_keys/keys/!r',
        { version },
        { sessions: tooMany },
        400,
        'M_BAD_JSON',
      ],
      [
        'a negative first_message_index',
        Method.Put,
        '/room_keys/keys/!r/s',
        { version },
        { ...key, first_message_index: -1 },
        400,
        'M_BAD_JSON',
      ],
      [
        'an extra field in session_data',
        Method.Put,
        '/room_keys/keys/!r/s',
        { version },
        { ...key, session_data: { ...key.session_data, x: 1 } },
        400,
        'M_BAD_JSON',
      ],
      [
        'an unknown query parameter',
        Method.Put,
        '/room_keys/keys/!r/s',
        { version, other: '1' },
        key,
        400,
        'M_INVALID_PARAM',
      ],
      [
        'a version of 10 digits',
        Method.Put,
        '/room_keys/keys/!r/s',
        { version: '1234567890' },
        key,
        404,
        'M_NOT_FOUND',
      ],
      ['a bare array', Method.Put, '/room_keys/keys', { version }, [key], 400, 'M_BAD_JSON'],
    ];
    for (const [name, method, path, query, body, status, errcode] of cases) {
      const got = await matrixErrorOf(
        p.client.http.authedRequest(method, path, query, JSON.stringify(body), {
          ...v3,
          json: false,
          headers: { 'Content-Type': 'application/json' },
        }),
      );
      expect([got.status, got.data.errcode], name).toEqual([status, errcode]);
    }
    expect(await p.client.getKeyBackupVersion()).toMatchObject({ version, count: 0, etag: '0' });
    expect(await get(p, keysPath(version))).toEqual({ rooms: {} });
  });

  it('deletes one key, one room, every key, then the version, each answer with the spec’s etag and count', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    await makeSessions(p, ['!one:example.org', '!two:example.org'], 2);
    const { version, decryptionKey } = await p.backup.setupKeyBackup(async () => {});
    await p.machine.enableBackupV1(decryptionKey.megolmV1PublicKey.publicKeyBase64, version);
    await uploadPending(p);
    const before = (await p.client.getKeyBackupVersion()) as VersionInfo;
    expect(before.count).toBe(4);
    const all = await get<AllKeys>(p, keysPath(version));
    const [sessionId] = Object.keys(all.rooms['!one:example.org']?.sessions ?? {});
    const del = (at: ReturnType<typeof keysPath>) =>
      p.client.http.authedRequest<{ etag: string; count: number }>(Method.Delete, at.path, at.queryData, undefined, v3);
    const etag = Number(before.etag);
    expect(await del(keysPath(version, '!one:example.org', sessionId))).toEqual({ etag: String(etag + 1), count: 3 });
    expect(await matrixErrorOf(get(p, keysPath(version, '!one:example.org', sessionId)))).toMatchObject({
      status: 404,
    });
    expect(await del(keysPath(version, '!two:example.org'))).toEqual({ etag: String(etag + 2), count: 1 });
    expect(await get(p, keysPath(version, '!two:example.org'))).toEqual({ sessions: {} });
    expect(await del(keysPath(version))).toEqual({ etag: String(etag + 3), count: 0 });
    expect(await get(p, keysPath(version))).toEqual({ rooms: {} });
    await p.backup.deleteKeyBackupVersion(version);
    expect(await p.client.getKeyBackupVersion()).toBeNull();
    // Deleting it again succeeds, as the spec asks of a version deleted before (two devices may both try).
    await p.backup.deleteKeyBackupVersion(version);
    expect((await matrixErrorOf(get(p, keysPath(version)))).data.errcode).toBe('M_NOT_FOUND');
  });

  it('what our SDK backs up a Matrix client restores, and what the Matrix client uploads our SDK restores: one backup, the same rows', async () => {
    const session = await account();
    // Real Megolm sessions, made by a Matrix device and given to our SDK's keystore (a key export's shape).
    const maker = await peer(session.state.token, { deviceId: 'MAKER' });
    await makeSessions(maker, ['!ours:example.org', '!shared:example.org'], 3);
    const made = await exportedKeys(maker);
    const keystore = await session.openKeystore(join(dir, `${backend}-a.db`));
    expect(await keystore.addRoomKeys(made.map((key) => ({ key: key as unknown as RoomKey })))).toBe(6);
    const backup = session.keyBackup(keystore);
    const { version, recoveryKey } = await backup.enable();
    expect((await backup.uploadPending()).uploaded).toBe(6);

    // A Matrix client finds that backup and restores it with the backup key (which the recovery key opens).
    const reader = await peer(session.state.token, { deviceId: 'READER' });
    const info = (await reader.client.getKeyBackupVersion()) as VersionInfo;
    expect(info).toMatchObject({ version, count: 6 });
    const backupKey = await backup.unlock({ recoveryKey }, info as never);
    const decryptionKey = reader.wasm.BackupDecryptionKey.fromBase64(toBase64(backupKey));
    expect(decryptionKey.megolmV1PublicKey.publicKeyBase64).toBe(info.auth_data.public_key);
    const restored = await reader.backup.restoreKeyBackup(version, reader.backup.createBackupDecryptor(decryptionKey));
    expect(restored).toMatchObject({ total: 6, imported: 6 });
    const ids = (keys: Array<{ room_id: string; session_id: string; session_key: string }>) =>
      keys.map((k) => `${k.room_id}|${k.session_id}|${k.session_key}`).sort();
    expect(ids(await exportedKeys(reader))).toEqual(ids(made));

    // Another Matrix device uploads its own new keys to the same version, through /_matrix.
    const writer = await peer(session.state.token, { deviceId: 'WRITER' });
    await makeSessions(writer, ['!theirs:example.org', '!shared:example.org'], 2);
    const written = await exportedKeys(writer);
    await writer.machine.enableBackupV1(info.auth_data.public_key, version);
    expect(await uploadPending(writer)).toBeGreaterThan(0);

    // Our SDK, on a new device with nothing but the recovery key, restores all ten through /v1.
    const fresh = await session.openKeystore(join(dir, `${backend}-b.db`));
    const result = await session.keyBackup(fresh).restore({ recoveryKey });
    expect(result).toMatchObject({ version, total: 10, imported: 10, failed: 0 });
    const held = await fresh.persistedRoomKeys();
    expect(ids(held.map((s) => s.key))).toEqual(ids([...made, ...written]));

    // One store behind both APIs: the unpaged Matrix download and our paged one hold the same rows, byte for byte.
    const matrixRows = await get<AllKeys>(reader, keysPath(version));
    const ourPage = (await (
      await fetch(new URL(`/v1/backup/keys?version=${version}&limit=100`, server.url), {
        headers: { authorization: `Bearer ${session.state.token}` },
      })
    ).json()) as { keys: Array<KeyBackupData & { room_id: string; session_id: string }>; next_cursor: string | null };
    expect(ourPage.next_cursor).toBeNull();
    const asMatrix: AllKeys = { rooms: {} };
    for (const { room_id, session_id, ...data } of ourPage.keys) {
      asMatrix.rooms[room_id] ??= { sessions: {} };
      (asMatrix.rooms[room_id] as { sessions: Record<string, KeyBackupData> }).sessions[session_id] = data;
    }
    expect(JSON.stringify(sortedRows(matrixRows))).toBe(JSON.stringify(sortedRows(asMatrix)));
    await keystore.close();
    await fresh.close();
  });

  it(`streams an unpaged download of a backup larger than one read (${UNPAGED_BATCH} keys), keys made by our core`, async () => {
    const session = await account();
    const p = await peer(session.state.token);
    const privateKey = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const publicKey = nodeMatrixCrypto.x25519PublicKey(privateKey);
    const { version } = await p.client.http.authedRequest<{ version: string }>(
      Method.Post,
      '/room_keys/version',
      undefined,
      { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: toBase64(publicKey) } },
      v3,
    );
    // 2,500 keys in rooms of 70: rooms straddle the reads of 1,000, and the last read is short.
    const keys = makeRoomKeys(2500, 70);
    const sent: AllKeys = { rooms: {} };
    for (let i = 0; i < keys.length; i += 1000) {
      const batch: AllKeys = { rooms: {} };
      for (const key of keys.slice(i, i + 1000)) {
        const { room_id, session_id, ...plaintext } = key;
        const data: KeyBackupData = {
          first_message_index: 0,
          forwarded_count: 0,
          is_verified: false,
          session_data: encryptForBackup(
            nodeMatrixCrypto,
            publicKey,
            utf8(JSON.stringify(plaintext)),
            globalThis.crypto.getRandomValues(new Uint8Array(32)),
          ),
        };
        for (const target of [batch, sent]) {
          target.rooms[room_id] ??= { sessions: {} };
          (target.rooms[room_id] as { sessions: Record<string, KeyBackupData> }).sessions[session_id] = data;
        }
      }
      const stored = await p.client.http.authedRequest<{ etag: string; count: number }>(
        Method.Put,
        '/room_keys/keys',
        { version },
        batch,
        v3,
      );
      expect(stored.count).toBe(Math.min(i + 1000, keys.length));
    }
    const all = await get<AllKeys>(p, keysPath(version));
    expect(sortedRows(all)).toEqual(sortedRows(sent));
    // The room read across the first boundary (keys 980 to 1,049) comes whole.
    const straddling = keys[999]?.room_id as string;
    const room = await get<{ sessions: Record<string, KeyBackupData> }>(p, keysPath(version, straddling));
    expect(Object.keys(room.sessions)).toHaveLength(70);
    expect(room).toEqual(sent.rooms[straddling]);
    // What our core encrypted, the Matrix client's own wasm decrypts (its argument order: ephemeral, mac, ciphertext).
    const decryptionKey = p.wasm.BackupDecryptionKey.fromBase64(toBase64(privateKey));
    for (const key of [keys[0], keys[1234], keys[2499]]) {
      const data = all.rooms[key?.room_id as string]?.sessions[key?.session_id as string]?.session_data;
      const opened = JSON.parse(
        decryptionKey.decryptV1(data?.ephemeral ?? '', data?.mac ?? '', data?.ciphertext ?? ''),
      );
      expect(opened.session_key).toBe(key?.session_key);
    }
    // Streamed: sent in chunks as it is read, with no length known up front.
    const response = await fetch(new URL(`/_matrix/client/v3/room_keys/keys?version=${version}`, server.url), {
      headers: { authorization: `Bearer ${session.state.token}` },
    });
    expect(response.headers.get('transfer-encoding')).toBe('chunked');
    expect(response.headers.get('content-length')).toBeNull();
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(sortedRows(JSON.parse(await response.text()) as AllKeys)).toEqual(sortedRows(sent));
  });

  it('gives no 5xx to parallel PUTs and DELETEs on every key route, and leaves count and keys agreeing', async () => {
    const session = await account();
    const p = await peer(session.state.token);
    const privateKey = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const publicKey = nodeMatrixCrypto.x25519PublicKey(privateKey);
    const { version } = await p.client.http.authedRequest<{ version: string }>(
      Method.Post,
      '/room_keys/version',
      undefined,
      { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: toBase64(publicKey) } },
      v3,
    );
    const data = (index: number): KeyBackupData => ({
      first_message_index: index,
      forwarded_count: 0,
      is_verified: index % 2 === 0,
      session_data: encryptForBackup(
        nodeMatrixCrypto,
        publicKey,
        utf8(JSON.stringify({ index })),
        globalThis.crypto.getRandomValues(new Uint8Array(32)),
      ),
    });
    const rooms = ['!race1:example.org', '!race2:example.org'];
    const sessions = ['s1', 's2', 's3'];
    const pick = <T>(items: T[], i: number) => items[i % items.length] as T;
    const calls: Array<() => Promise<unknown>> = [];
    for (let i = 0; i < 36; i++) {
      const room = pick(rooms, i);
      const sessionId = pick(sessions, i >> 1);
      const call = (method: Method, at: ReturnType<typeof keysPath>, body?: Record<string, unknown>) => () =>
        p.client.http.authedRequest(method, at.path, at.queryData, body, v3);
      calls.push(
        [
          call(Method.Put, keysPath(version, room, sessionId), data(i)),
          call(Method.Put, keysPath(version, room), { sessions: { [sessionId]: data(i), s9: data(i + 1) } }),
          call(Method.Put, keysPath(version), { rooms: { [room]: { sessions: { [sessionId]: data(i) } } } }),
          call(Method.Delete, keysPath(version, room, sessionId)),
          call(Method.Delete, keysPath(version, room)),
          call(Method.Delete, keysPath(version)),
        ][i % 6] as () => Promise<unknown>,
      );
    }
    const outcomes = await Promise.allSettled(calls.map((call) => call()));
    const statuses = outcomes.map((o) =>
      o.status === 'fulfilled' ? 200 : o.reason instanceof MatrixError ? o.reason.httpStatus : String(o.reason),
    );
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    const info = (await p.client.getKeyBackupVersion()) as VersionInfo;
    const rows = sortedRows(await get<AllKeys>(p, keysPath(version)));
    expect(info.count).toBe(rows.length);
  });
});

/** The rows of an unpaged answer as [room, session, data] in a fixed order, for comparing two answers. */
function sortedRows(all: AllKeys): Array<[string, string, KeyBackupData]> {
  return Object.entries(all.rooms)
    .flatMap(([room, { sessions }]) =>
      Object.entries(sessions).map(([id, data]) => [room, id, data] as [string, string, KeyBackupData]),
    )
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1));
}

describe('what a Matrix web client needs of HTTP itself', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer();
    const { client } = await createVerifiedAccount(server, 'web@example.com', 'web password');
    token = (await client.logIn('web@example.com', 'web password')).state.token;
  });
  afterAll(async () => server.close());
  const at = (path: string) => new URL(`/_matrix/client/v3${path}`, server.url);

  it('answers a CORS preflight without authentication or logic, and CORS on answers and errors', async () => {
    const preflight = await fetch(at('/room_keys/version'), {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('PUT');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('Authorization');
    const refused = await fetch(at('/room_keys/version'), { headers: { origin: 'https://app.example' } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    expect(await refused.json()).toEqual({ errcode: 'M_MISSING_TOKEN', error: 'Missing access token.' });
  });

  it('takes a JSON body sent without Content-Type or as text/plain, as the spec allows', async () => {
    const body = JSON.stringify({
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: { public_key: toBase64(randomKey()) },
    });
    // A Uint8Array body gets no Content-Type from fetch.
    const bare = await fetch(at('/room_keys/version'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: new TextEncoder().encode(body),
    });
    expect([bare.status, await bare.json()]).toEqual([200, { version: '1' }]);
    const plain = await fetch(at('/room_keys/version'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
      body,
    });
    expect([plain.status, await plain.json()]).toEqual([200, { version: '2' }]);
    const notJson = await fetch(at('/room_keys/version'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
      body: 'algorithm=x',
    });
    expect([notJson.status, ((await notJson.json()) as { errcode: string }).errcode]).toEqual([400, 'M_NOT_JSON']);
  });
});

describe('a Matrix client’s ?access_token= in the server log', () => {
  it('never reaches a log line: the URL is logged with the token replaced', async () => {
    const lines: string[] = [];
    const server = await startTestServer({ logLevel: 'info' }, { logStream: { write: (line) => lines.push(line) } });
    try {
      const email = 'logs@example.com';
      const { client } = await createVerifiedAccount(server, email, 'logs password');
      const session = await client.logIn(email, 'logs password');
      const p = await matrixPeer(server.url, session.state.token, { useAuthorizationHeader: false });
      try {
        expect(await p.client.getKeyBackupVersion()).toBeNull();
        const refused = await p.client.http
          .authedRequest(Method.Get, '/room_keys/keys', { version: 'x' }, undefined, { prefix: ClientPrefix.V3 })
          .catch((error: unknown) => error);
        expect(refused).toBeInstanceOf(MatrixError);
      } finally {
        p.close();
      }
      const log = lines.join('\n');
      expect(log).toContain('/_matrix/client/v3/room_keys/version?access_token=[redacted]');
      expect(log).toContain('/_matrix/client/v3/room_keys/keys?version=x&access_token=[redacted]');
      expect(log).not.toContain(session.state.token);
    } finally {
      await server.close();
    }
  });
});
