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
  let alice: Session;
  let bob: Session;
  const call = async (session: Session, method: string, path: string, body?: unknown) => {
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

  beforeAll(async () => {
    server = await startTestServer();
    const a = await createVerifiedAccount(server, 'alice@example.com', 'alice password');
    alice = await a.client.logIn('alice@example.com', 'alice password');
    const b = await createVerifiedAccount(server, 'bob@example.com', 'bob password');
    bob = await b.client.logIn('bob@example.com', 'bob password');
  });
  afterAll(async () => server.close());

  it('has no backup at first, then versions counted from 1', async () => {
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
    const put = (key: ReturnType<typeof keyData>) =>
      call(alice, 'PUT', '/v1/backup/keys?version=1', { rooms: { '!r:x': { sessions: { s1: key } } } });
    const verifiedHigh = keyData({ verified: true, index: 10, note: 'verified' });
    expect((await put(verifiedHigh)).body).toEqual({ etag: '1', count: 1 });
    // Synapse would let an unverified lower-index key replace a verified one (synapse#13704).
    expect((await put(keyData({ verified: false, index: 0 }))).body).toEqual({ etag: '1', count: 1 });
    // A lower forwarded_count must not beat a lower first_message_index.
    expect((await put(keyData({ verified: true, index: 20, forwarded: 0 }))).body).toEqual({ etag: '1', count: 1 });
    const stored = await call(alice, 'GET', `/v1/backup/keys/${encodeURIComponent('!r:x')}/s1?version=1`);
    expect(stored.body).toEqual(verifiedHigh);
    const better = keyData({ verified: true, index: 5 });
    expect((await put(better)).body).toEqual({ etag: '2', count: 1 });
    expect((await call(alice, 'GET', `/v1/backup/keys/${encodeURIComponent('!r:x')}/s1?version=1`)).body).toEqual(
      better,
    );
  });

  it('pages through keys in order with a cursor', async () => {
    const sessions = Object.fromEntries(
      Array.from({ length: 25 }, (_, i) => [`p${String(i).padStart(2, '0')}`, keyData()]),
    );
    const uploaded = await call(alice, 'PUT', '/v1/backup/keys?version=1', { rooms: { '!page:x': { sessions } } });
    expect(uploaded.body.count).toBe(26);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const query: string = cursor === null ? '' : `&cursor=${cursor}`;
      const page = await call(alice, 'GET', `/v1/backup/keys?version=1&limit=10${query}`);
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
    await call(alice, 'POST', '/v1/backup/version', {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: authData,
    });
    const stale = await call(alice, 'PUT', '/v1/backup/keys?version=1', {
      rooms: { '!r:x': { sessions: { s9: keyData() } } },
    });
    expect(stale.status).toBe(403);
    expect(stale.body).toMatchObject({ code: 'LK_WRONG_BACKUP_VERSION', details: { currentVersion: '2' } });
    const missing = await call(alice, 'PUT', '/v1/backup/keys?version=7', { rooms: {} });
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('LK_BACKUP_NOT_FOUND');
    // Old versions stay readable until deleted, and numbers are never reused.
    expect((await call(alice, 'GET', '/v1/backup/version/1')).body.count).toBe(26);
    await call(alice, 'DELETE', '/v1/backup/version/2');
    expect((await call(alice, 'GET', '/v1/backup/version')).body.version).toBe('1');
    const third = await call(alice, 'POST', '/v1/backup/version', {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: authData,
    });
    expect(third.body.version).toBe('3');
  });

  it("never shows one account another account's backup or secrets", async () => {
    expect((await call(bob, 'GET', '/v1/backup/version/1')).body.code).toBe('LK_BACKUP_NOT_FOUND');
    expect((await call(bob, 'GET', '/v1/backup/keys?version=1')).body.code).toBe('LK_BACKUP_NOT_FOUND');
    expect((await call(bob, 'DELETE', '/v1/backup/version/1')).body.code).toBe('LK_BACKUP_NOT_FOUND');
    await call(alice, 'PUT', '/v1/secret-storage/keys/k1', { algorithm: 'm.secret_storage.v1.aes-hmac-sha2' });
    await call(alice, 'PUT', '/v1/secret-storage/secrets/m.megolm_backup.v1', {
      encrypted: { k1: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext: 'Zm9v', mac: 'YmFy' } },
    });
    expect((await call(bob, 'GET', '/v1/secret-storage/secrets/m.megolm_backup.v1')).body.code).toBe(
      'LK_SECRET_NOT_FOUND',
    );
    expect((await call(bob, 'GET', '/v1/secret-storage/keys')).body).toEqual({ default_key: null, keys: {} });
    expect((await call(alice, 'GET', '/v1/secret-storage/secrets/m.megolm_backup.v1')).status).toBe(200);
  });

  it('refuses a secret under an undescribed key, and sets the default key', async () => {
    const refused = await call(alice, 'PUT', '/v1/secret-storage/secrets/other', {
      encrypted: { nokey: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext: 'Zm9v', mac: 'YmFy' } },
    });
    expect(refused.body.code).toBe('LK_SECRET_NOT_FOUND');
    expect((await call(alice, 'PUT', '/v1/secret-storage/default-key', { key: 'k1' })).status).toBe(200);
    expect((await call(alice, 'GET', '/v1/secret-storage/keys')).body.default_key).toBe('k1');
  });

  it('addresses the longest ids (255 characters, each escaped in the path) by path', async () => {
    const { version } = (await call(alice, 'GET', '/v1/backup/version')).body as { version: string };
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
