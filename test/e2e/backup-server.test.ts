import type { Session } from '@latchkey/client';
import { encryptForBackup, nobleMatrixCrypto, toBase64, utf8 } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/** The backup and secrets modules over raw HTTP: versions, the better-key rule, paging, isolation. */

const publicKey = nobleMatrixCrypto.x25519PublicKey(new Uint8Array(32).fill(9));

function keyData(options: { verified?: boolean; index?: number; forwarded?: number; note?: string } = {}) {
  const session = encryptForBackup(
    nobleMatrixCrypto,
    publicKey,
    utf8(JSON.stringify({ note: options.note ?? 'x' })),
    globalThis.crypto.getRandomValues(new Uint8Array(32)),
  );
  return {
    first_message_index: options.index ?? 0,
    forwarded_count: options.forwarded ?? 0,
    is_verified: options.verified ?? false,
    session_data: session,
  };
}

describe('backup module over HTTP', () => {
  let server: TestServer;
  let accounts = 0;
  type Reply = { status: number; body: Record<string, unknown> };
  const call = async (session: Session, method: string, path: string, body?: unknown): Promise<Reply> => {
    const response = await fetch(new URL(path, server.url), {
      method,
      headers: {
        authorization: `Bearer ${session.state.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const authData = { public_key: toBase64(publicKey) };

  /** A fresh, logged-in account of its own for each test: no test reads what another left. */
  async function newAccount(name: string): Promise<Session> {
    const email = `${name}-${++accounts}@example.com`;
    const { client } = await createVerifiedAccount(server, email, `${name} password`);
    return client.logIn(email, `${name} password`);
  }

  async function newVersion(session: Session, auth_data: Record<string, unknown> = authData): Promise<string> {
    const created = await call(session, 'POST', '/v1/backup/version', {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data,
    });
    expect(created.status).toBe(200);
    return created.body.version as string;
  }

  type Rooms = Record<string, Record<string, ReturnType<typeof keyData>>>;
  const upload = (session: Session, version: string, rooms: Rooms) =>
    call(session, 'PUT', `/v1/backup/keys?version=${version}`, {
      rooms: Object.fromEntries(Object.entries(rooms).map(([room, sessions]) => [room, { sessions }])),
    });

  /** Every key of a version through the paged download, one key a page, so each page is its own query. */
  async function download(session: Session, version: string): Promise<Rooms> {
    const rooms: Rooms = {};
    let cursor: string | null = null;
    for (let pages = 0; pages < 50; pages++) {
      const query: string = cursor === null ? '' : `&cursor=${cursor}`;
      const page = await call(session, 'GET', `/v1/backup/keys?version=${version}&limit=1${query}`);
      expect(page.status).toBe(200);
      for (const { room_id, session_id, ...key } of page.body.keys as Array<
        { room_id: string; session_id: string } & ReturnType<typeof keyData>
      >) {
        rooms[room_id] = { ...rooms[room_id], [session_id]: key };
      }
      cursor = page.body.next_cursor as string | null;
      if (cursor === null) return rooms;
    }
    throw new Error('more pages than keys');
  }

  const keyPath = (room: string, session: string, version: string) =>
    `/v1/backup/keys/${encodeURIComponent(room)}/${encodeURIComponent(session)}?version=${version}`;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => server.close());

  it('has no backup at first, then versions counted from 1', async () => {
    const alice = await newAccount('first');
    expect((await call(alice, 'GET', '/v1/backup/version')).body.code).toBe('LK_BACKUP_NOT_FOUND');
    const created = await call(alice, 'POST', '/v1/backup/version', {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: authData,
    });
    expect(created).toEqual({ status: 200, body: { version: '1' } });
    expect((await call(alice, 'GET', '/v1/backup/version')).body).toEqual({
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: authData,
      count: 0,
      etag: '0',
      version: '1',
    });
  });

  it('keeps the better key by the spec order, not Synapse’s', async () => {
    const alice = await newAccount('better');
    const version = await newVersion(alice);
    const put = (key: ReturnType<typeof keyData>) => upload(alice, version, { '!r:x': { s1: key } });
    const verifiedHigh = keyData({ verified: true, index: 10, note: 'verified' });
    expect((await put(verifiedHigh)).body).toEqual({ etag: '1', count: 1 });
    // Synapse would let an unverified lower-index key replace a verified one (synapse#13704).
    expect((await put(keyData({ verified: false, index: 0 }))).body).toEqual({ etag: '1', count: 1 });
    // A lower forwarded_count must not beat a lower first_message_index.
    expect((await put(keyData({ verified: true, index: 20, forwarded: 0 }))).body).toEqual({ etag: '1', count: 1 });
    expect((await call(alice, 'GET', keyPath('!r:x', 's1', version))).body).toEqual(verifiedHigh);
    const better = keyData({ verified: true, index: 5 });
    expect((await put(better)).body).toEqual({ etag: '2', count: 1 });
    expect((await call(alice, 'GET', keyPath('!r:x', 's1', version))).body).toEqual(better);
  });

  it('pages through keys in order with a cursor', async () => {
    const alice = await newAccount('pages');
    const version = await newVersion(alice);
    const sessions = Object.fromEntries(
      Array.from({ length: 25 }, (_, i) => [`p${String(i).padStart(2, '0')}`, keyData()]),
    );
    const uploaded = await upload(alice, version, { '!page:x': sessions, '!r:x': { s1: keyData() } });
    expect(uploaded.body).toEqual({ etag: '1', count: 26 });
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const query: string = cursor === null ? '' : `&cursor=${cursor}`;
      const page = await call(alice, 'GET', `/v1/backup/keys?version=${version}&limit=10${query}`);
      // Every page names the version's count and etag, as the upload left them.
      expect({ count: page.body.count, etag: page.body.etag }).toEqual(uploaded.body);
      const keys = page.body.keys as Array<{ room_id: string; session_id: string }>;
      seen.push(...keys.map((k) => `${k.room_id}/${k.session_id}`));
      cursor = page.body.next_cursor as string | null;
      if (cursor === null) break;
    }
    expect(seen).toHaveLength(26);
    expect([...seen].sort()).toEqual(seen);
    expect(new Set(seen).size).toBe(26);
  });

  it('refuses writes to a stale version with LK_WRONG_BACKUP_VERSION naming the current one', async () => {
    const alice = await newAccount('stale');
    expect(await newVersion(alice)).toBe('1');
    expect((await upload(alice, '1', { '!r:x': { s1: keyData(), s2: keyData() } })).body.count).toBe(2);
    expect(await newVersion(alice)).toBe('2');
    const stale = await upload(alice, '1', { '!r:x': { s9: keyData() } });
    expect(stale.status).toBe(403);
    expect(stale.body).toMatchObject({ code: 'LK_WRONG_BACKUP_VERSION', details: { currentVersion: '2' } });
    const missing = await call(alice, 'PUT', '/v1/backup/keys?version=7', { rooms: {} });
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('LK_BACKUP_NOT_FOUND');
    // Old versions stay readable until deleted, and numbers are never reused.
    expect((await call(alice, 'GET', '/v1/backup/version/1')).body.count).toBe(2);
    await call(alice, 'DELETE', '/v1/backup/version/2');
    expect((await call(alice, 'GET', '/v1/backup/version')).body.version).toBe('1');
    expect(await newVersion(alice)).toBe('3');
  });

  it("never shows one account another account's backup or secrets", async () => {
    const alice = await newAccount('alice');
    const bob = await newAccount('bob');
    // Both have a version 1 holding the same room and session ids, so every query runs over rows of
    // both accounts and only its account filter tells them apart; alice has a version 2 as well.
    const aliceKeys: Rooms = {
      '!shared:x': { s1: keyData({ verified: true, note: 'alice s1' }), s2: keyData({ verified: true }) },
      '!alice:x': { a1: keyData({ note: 'alice a1' }) },
    };
    const bobAuthData = { public_key: toBase64(nobleMatrixCrypto.x25519PublicKey(new Uint8Array(32).fill(7))) };
    expect(await newVersion(alice)).toBe('1');
    expect((await upload(alice, '1', aliceKeys)).body).toEqual({ etag: '1', count: 3 });
    expect(await newVersion(bob, bobAuthData)).toBe('1');
    const bobKeys: Rooms = {
      '!shared:x': { s1: keyData({ index: 9, forwarded: 2, note: 'bob s1' }) },
      '!bob:x': { b1: keyData({ note: 'bob b1' }) },
    };
    expect((await upload(bob, '1', bobKeys)).body).toEqual({ etag: '1', count: 2 });
    expect(await newVersion(alice)).toBe('2');
    const aliceLatest: Rooms = { '!shared:x': { s1: keyData({ note: 'alice v2' }) } };
    expect((await upload(alice, '2', aliceLatest)).body).toEqual({ etag: '1', count: 1 });

    // Versions: bob's current and numbered reads are his own; alice's version 2 is not there for him.
    const bobVersion = {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: bobAuthData,
      count: 2,
      etag: '1',
      version: '1',
    };
    expect(await call(bob, 'GET', '/v1/backup/version')).toEqual({ status: 200, body: bobVersion });
    expect(await call(bob, 'GET', '/v1/backup/version/1')).toEqual({ status: 200, body: bobVersion });
    const notFound = { status: 404, code: 'LK_BACKUP_NOT_FOUND' };
    const codeOf = (reply: Reply) => ({ status: reply.status, code: reply.body.code });
    expect(codeOf(await call(bob, 'GET', '/v1/backup/version/2'))).toEqual(notFound);
    // Keys, paged and one by one: exactly bob's, never alice's copy of the same ids.
    expect(await download(bob, '1')).toEqual(bobKeys);
    expect(codeOf(await call(bob, 'GET', '/v1/backup/keys?version=2'))).toEqual(notFound);
    expect(await call(bob, 'GET', keyPath('!shared:x', 's1', '1'))).toEqual({
      status: 200,
      body: bobKeys['!shared:x']?.s1,
    });
    const noKey = { status: 404, code: 'LK_BACKUP_KEY_NOT_FOUND' };
    expect(codeOf(await call(bob, 'GET', keyPath('!shared:x', 's2', '1')))).toEqual(noKey);
    expect(codeOf(await call(bob, 'GET', keyPath('!alice:x', 'a1', '1')))).toEqual(noKey);
    expect(codeOf(await call(bob, 'GET', keyPath('!shared:x', 's1', '2')))).toEqual(notFound);

    // Writes: bob's upload is ranked against his own keys only, and his deletes reach his own alone.
    const bobS2 = keyData({ index: 50, forwarded: 9, note: 'bob s2' });
    expect((await upload(bob, '1', { '!shared:x': { s2: bobS2 } })).body).toEqual({ etag: '2', count: 3 });
    expect(await call(bob, 'GET', keyPath('!shared:x', 's2', '1'))).toEqual({ status: 200, body: bobS2 });
    const bobNewAuthData = { public_key: toBase64(nobleMatrixCrypto.x25519PublicKey(new Uint8Array(32).fill(5))) };
    const algorithm = 'm.megolm_backup.v1.curve25519-aes-sha2';
    expect((await call(bob, 'PUT', '/v1/backup/version/1', { algorithm, auth_data: bobNewAuthData })).status).toBe(200);
    expect((await call(bob, 'GET', '/v1/backup/version/1')).body.auth_data).toEqual(bobNewAuthData);
    expect(codeOf(await call(bob, 'DELETE', '/v1/backup/version/2'))).toEqual(notFound);
    expect(
      codeOf(
        await call(bob, 'PUT', '/v1/backup/version/2', {
          algorithm,
          auth_data: bobAuthData,
        }),
      ),
    ).toEqual(notFound);
    expect((await call(bob, 'DELETE', keyPath('!shared:x', 's1', '1'))).status).toBe(200);
    expect((await call(bob, 'DELETE', `/v1/backup/keys/${encodeURIComponent('!shared:x')}?version=1`)).status).toBe(
      200,
    );
    expect(await download(bob, '1')).toEqual({ '!bob:x': bobKeys['!bob:x'] });
    expect((await call(bob, 'DELETE', '/v1/backup/keys?version=1')).status).toBe(200);
    expect(await download(bob, '1')).toEqual({});
    expect((await call(bob, 'DELETE', '/v1/backup/version/1')).status).toBe(200);
    expect(codeOf(await call(bob, 'GET', '/v1/backup/version'))).toEqual(notFound);
    // Alice's backup is as she left it, every version and every key.
    expect((await call(alice, 'GET', '/v1/backup/version')).body).toMatchObject({ version: '2', count: 1, etag: '1' });
    expect((await call(alice, 'GET', '/v1/backup/version/1')).body).toMatchObject({
      auth_data: authData,
      count: 3,
      etag: '1',
    });
    expect(await download(alice, '1')).toEqual(aliceKeys);
    expect(await download(alice, '2')).toEqual(aliceLatest);

    // Secrets: both store the same names; each reads back only their own.
    const secret = (ciphertext: string) => ({
      encrypted: { k1: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext, mac: 'YmFy' } },
    });
    const description = (name: string) => ({ name, algorithm: 'm.secret_storage.v1.aes-hmac-sha2' });
    for (const [who, name] of [
      [alice, 'alice'],
      [bob, 'bob'],
    ] as const) {
      expect((await call(who, 'PUT', '/v1/secret-storage/keys/k1', description(name))).status).toBe(200);
      expect(
        (await call(who, 'PUT', '/v1/secret-storage/secrets/m.megolm_backup.v1', secret(toBase64(utf8(name))))).status,
      ).toBe(200);
    }
    expect((await call(alice, 'PUT', '/v1/secret-storage/keys/k2', description('alice two'))).status).toBe(200);
    expect((await call(alice, 'PUT', '/v1/secret-storage/default-key', { key: 'k2' })).status).toBe(200);
    expect((await call(alice, 'PUT', '/v1/secret-storage/secrets/alice.only', secret('Zm9v'))).status).toBe(200);
    expect(await call(bob, 'GET', '/v1/secret-storage/secrets/m.megolm_backup.v1')).toEqual({
      status: 200,
      body: secret(toBase64(utf8('bob'))),
    });
    expect(await call(alice, 'GET', '/v1/secret-storage/secrets/m.megolm_backup.v1')).toEqual({
      status: 200,
      body: secret(toBase64(utf8('alice'))),
    });
    expect((await call(bob, 'GET', '/v1/secret-storage/secrets/alice.only')).body.code).toBe('LK_SECRET_NOT_FOUND');
    expect((await call(bob, 'GET', '/v1/secret-storage/keys')).body).toEqual({
      default_key: null,
      keys: { k1: description('bob') },
    });
    expect((await call(bob, 'GET', '/v1/secret-storage/keys/k2')).status).toBe(404);
    expect((await call(bob, 'DELETE', '/v1/secret-storage/secrets/alice.only')).body.code).toBe('LK_SECRET_NOT_FOUND');
    expect((await call(alice, 'GET', '/v1/secret-storage/secrets/alice.only')).status).toBe(200);
  });

  it('refuses a secret under an undescribed key, and sets the default key', async () => {
    const alice = await newAccount('secrets');
    expect(
      (await call(alice, 'PUT', '/v1/secret-storage/keys/k1', { algorithm: 'm.secret_storage.v1.aes-hmac-sha2' }))
        .status,
    ).toBe(200);
    const refused = await call(alice, 'PUT', '/v1/secret-storage/secrets/other', {
      encrypted: { nokey: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext: 'Zm9v', mac: 'YmFy' } },
    });
    expect(refused.body.code).toBe('LK_SECRET_NOT_FOUND');
    expect((await call(alice, 'PUT', '/v1/secret-storage/default-key', { key: 'k1' })).status).toBe(200);
    expect((await call(alice, 'GET', '/v1/secret-storage/keys')).body.default_key).toBe('k1');
  });

  it('addresses the longest ids (255 characters, each escaped in the path) by path', async () => {
    const alice = await newAccount('long');
    const version = await newVersion(alice);
    // A Matrix room id may be 255 bytes; '!' and ':' (and '/') are escaped, so the path segment is longer.
    const roomId = `!${'r/'.repeat(125)}:example.org`.slice(0, 255);
    const sessionId = 's/'.repeat(128).slice(0, 255);
    expect([roomId.length, sessionId.length]).toEqual([255, 255]);
    const key = keyData({ note: 'long ids' });
    const put = await call(alice, 'PUT', `/v1/backup/keys?version=${version}`, {
      rooms: { [roomId]: { sessions: { [sessionId]: key } } },
    });
    expect(put.status).toBe(200);
    const path = `/v1/backup/keys/${encodeURIComponent(roomId)}/${encodeURIComponent(sessionId)}?version=${version}`;
    expect(await call(alice, 'GET', path)).toEqual({ status: 200, body: key });
    expect((await call(alice, 'DELETE', path)).status).toBe(200);
    expect((await call(alice, 'GET', path)).body.code).toBe('LK_BACKUP_KEY_NOT_FOUND');
    // One character more is refused by the schema, as an id, not as an unknown route.
    const tooLong = await call(
      alice,
      'GET',
      `/v1/backup/keys/${encodeURIComponent(`${roomId}x`)}/s?version=${version}`,
    );
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.code).toBe('LK_VALIDATION');
  });
});
