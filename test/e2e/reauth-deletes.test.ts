import { encryptForBackup, FRESH_AUTH_MS, nobleMatrixCrypto, toBase64, utf8 } from '@latchkey/core';
import { describe, expect, it } from 'vitest';
import { BACKENDS } from '../support/backends.js';
import { codeOf } from '../support/errors.js';
import { useSkewedServer } from '../support/skewed-server.js';

/**
 * Issue 8: destructive deletes need a recent reauthentication. A bearer token alone (stolen from a log,
 * a proxy, a backup of the device) must not wipe the key backup or secret storage; it needs the same
 * fresh password check (FRESH_AUTH_MS) that password change and account deletion ask for. Each attack
 * runs with the server's clock moved past that window and checks the bytes stayed; after a
 * reauthentication the same deletes go through.
 */

const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const publicKey = nobleMatrixCrypto.x25519PublicKey(new Uint8Array(32).fill(7));
const ROOM = '!room:example.org';
const OTHER_ROOM = '!other:example.org';
const SECRET = 'm.megolm_backup.v1';

function keyData(note: string) {
  return {
    first_message_index: 0,
    forwarded_count: 0,
    is_verified: true,
    session_data: encryptForBackup(
      nobleMatrixCrypto,
      publicKey,
      utf8(JSON.stringify({ note })),
      globalThis.crypto.getRandomValues(new Uint8Array(32)),
    ),
  };
}

describe.each(BACKENDS)('destructive deletes need a fresh password check (%s)', (backend) => {
  const env = useSkewedServer(backend, 'reauth_deletes');
  const { call } = env;

  /** An account with a backup (two rooms of keys) and a stored secret, and its logged-in session. */
  async function victim(name: string) {
    const { session, password } = await env.account(name);
    const token = session.state.token;
    const created = await call(token, 'POST', '/v1/backup/version', {
      algorithm: ALGORITHM,
      auth_data: { public_key: toBase64(publicKey) },
    });
    const version = created.body.version as string;
    const rooms = {
      [ROOM]: { sessions: { s1: keyData('one'), s2: keyData('two') } },
      [OTHER_ROOM]: { sessions: { s3: keyData('three') } },
    };
    expect((await call(token, 'PUT', `/v1/backup/keys?version=${version}`, { rooms })).status).toBe(200);
    const description = { name: 'recovery', algorithm: 'm.secret_storage.v1.aes-hmac-sha2' };
    expect((await call(token, 'PUT', '/v1/secret-storage/keys/k1', description)).status).toBe(200);
    const secret = { encrypted: { k1: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext: 'c2VjcmV0', mac: 'bWFj' } } };
    expect((await call(token, 'PUT', `/v1/secret-storage/secrets/${SECRET}`, secret)).status).toBe(200);
    return { session, token, password, version };
  }

  /** Everything the deletes could touch, as the server answers it: compared before and after an attack. */
  async function holdings(token: string, version: string) {
    const info = await call(token, 'GET', `/v1/backup/version/${version}`);
    const keys = await call(token, 'GET', `/v1/backup/keys?version=${version}&limit=100`);
    const secret = await call(token, 'GET', `/v1/secret-storage/secrets/${SECRET}`);
    expect([info.status, keys.status, secret.status]).toEqual([200, 200, 200]);
    return { info: info.body, keys: keys.body, secret: secret.body };
  }

  const ourDeletes = (version: string) => [
    `/v1/backup/version/${version}`,
    `/v1/backup/keys?version=${version}`,
    `/v1/backup/keys/${encodeURIComponent(ROOM)}?version=${version}`,
    `/v1/backup/keys/${encodeURIComponent(ROOM)}/s1?version=${version}`,
    `/v1/secret-storage/secrets/${SECRET}`,
  ];
  const matrixDeletes = (version: string) => [
    `/_matrix/client/v3/room_keys/version/${version}`,
    `/_matrix/client/v3/room_keys/keys?version=${version}`,
    `/_matrix/client/v3/room_keys/keys/${encodeURIComponent(ROOM)}?version=${version}`,
    `/_matrix/client/v3/room_keys/keys/${encodeURIComponent(ROOM)}/s1?version=${version}`,
  ];

  it('refuses every /v1 delete to a bearer token whose password check is stale, and changes nothing', async () => {
    const { token, version } = await victim('stolen');
    const before = await holdings(token, version);
    env.skew = FRESH_AUTH_MS + 1;
    for (const path of ourDeletes(version)) {
      const reply = await call(token, 'DELETE', path);
      expect({ path, status: reply.status, code: reply.body.code }).toEqual({
        path,
        status: 403,
        code: 'LK_REAUTH_REQUIRED',
      });
    }
    expect(await holdings(token, version)).toEqual(before);
  });

  it('refuses the Matrix room_keys deletes too, in Matrix’s error shape, and changes nothing', async () => {
    const { token, version } = await victim('matrix');
    const before = await holdings(token, version);
    env.skew = FRESH_AUTH_MS + 1;
    for (const path of matrixDeletes(version)) {
      const reply = await call(token, 'DELETE', path);
      expect({ path, status: reply.status, body: reply.body }).toEqual({
        path,
        status: 403,
        body: { errcode: 'M_FORBIDDEN', error: expect.any(String), lk_code: 'LK_REAUTH_REQUIRED' },
      });
    }
    // The same token by query parameter, as the spec lets Matrix clients send it.
    const byQuery = await fetch(new URL(`${matrixDeletes(version)[0]}?access_token=${token}`, env.server.url), {
      method: 'DELETE',
    });
    expect(byQuery.status).toBe(403);
    expect(((await byQuery.json()) as { lk_code?: string }).lk_code).toBe('LK_REAUTH_REQUIRED');
    expect(await holdings(token, version)).toEqual(before);
  });

  it('lets every delete through once the session has proved the password again', async () => {
    const { session, token, password, version } = await victim('owner');
    env.skew = FRESH_AUTH_MS + 1;
    expect((await call(token, 'DELETE', `/v1/secret-storage/secrets/${SECRET}`)).status).toBe(403);
    await session.reauthenticate(password);
    const [wholeVersion, allKeys, oneRoom, oneKey, secret] = ourDeletes(version) as [
      string,
      string,
      string,
      string,
      string,
    ];
    expect(await call(token, 'DELETE', oneKey)).toEqual({ status: 200, body: { etag: '2', count: 2 } });
    expect(await call(token, 'DELETE', oneRoom)).toEqual({ status: 200, body: { etag: '3', count: 1 } });
    expect(await call(token, 'DELETE', allKeys)).toEqual({ status: 200, body: { etag: '4', count: 0 } });
    expect(await call(token, 'DELETE', secret)).toEqual({ status: 200, body: {} });
    expect(await call(token, 'DELETE', wholeVersion)).toEqual({ status: 200, body: {} });
    expect((await call(token, 'GET', `/v1/backup/version/${version}`)).body.code).toBe('LK_BACKUP_NOT_FOUND');
  });

  it('lets the Matrix deletes through after a reauthentication, and stale again after the window', async () => {
    const { session, token, password, version } = await victim('matrix-owner');
    env.skew = FRESH_AUTH_MS + 1;
    await session.reauthenticate(password);
    const oneKey = matrixDeletes(version)[3] as string;
    expect(await call(token, 'DELETE', oneKey)).toEqual({ status: 200, body: { etag: '2', count: 2 } });
    env.skew = 2 * FRESH_AUTH_MS + 2;
    expect((await call(token, 'DELETE', matrixDeletes(version)[0] as string)).status).toBe(403);
  });

  it('gives the SDK a clear LK_REAUTH_REQUIRED, and a password option that reauthenticates first', async () => {
    const { session, password, version } = await victim('sdk');
    const keystore = await session.openKeystore(`${env.server.dir}/sdk-${backend}.db`);
    const backup = session.keyBackup(keystore);
    env.skew = FRESH_AUTH_MS + 1;
    expect(await codeOf(backup.delete(version))).toBe('LK_REAUTH_REQUIRED');
    expect(await codeOf(backup.delete(version, { password: 'not the password' }))).toBe('LK_LOGIN_FAILED');
    expect((await backup.current())?.version).toBe(version);
    await backup.delete(version, { password });
    expect(await backup.current()).toBeUndefined();
    await keystore.close();
  });

  it('replaces a backup only after a fresh password check, and a refusal leaves the server as it was', async () => {
    const { session, password, tag } = await env.account('replace');
    const keystore = await session.openKeystore(`${env.server.dir}/${tag}.db`);
    const backup = session.keyBackup(keystore);
    const first = await backup.enable();
    const secretBefore = await call(session.state.token, 'GET', `/v1/secret-storage/secrets/${SECRET}`);
    expect(secretBefore.status).toBe(200);

    env.skew = FRESH_AUTH_MS + 1;
    expect(await codeOf(backup.enable({ replace: true }))).toBe('LK_REAUTH_REQUIRED');
    // Still the one backup, its key still the one in secret storage: the old recovery key still opens it.
    expect((await backup.current())?.version).toBe(first.version);
    expect(await call(session.state.token, 'GET', `/v1/secret-storage/secrets/${SECRET}`)).toEqual(secretBefore);
    const check = await session.openKeystore(`${env.server.dir}/${tag}-check.db`);
    expect(await session.keyBackup(check).restore({ recoveryKey: first.recoveryKey })).toMatchObject({
      version: first.version,
      failed: 0,
    });
    await check.close();

    const second = await backup.enable({ replace: true, password });
    expect(second.replaced?.version).toBe(first.version);
    expect((await backup.current())?.version).toBe(second.version);
    expect((await call(session.state.token, 'GET', `/v1/backup/version/${first.version}`)).body.code).toBe(
      'LK_BACKUP_NOT_FOUND',
    );
    await keystore.close();
  });
});
