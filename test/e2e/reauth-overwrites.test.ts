import { FRESH_AUTH_MS, LatchkeyError, nobleMatrixCrypto, toBase64 } from '@latchkey/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BACKENDS } from '../support/backends.js';
import { codeOf } from '../support/errors.js';
import { createTestDatabase } from '../support/postgres.js';
import { createLoggedInAccount, startTestServer, type TestServer } from '../support/server.js';
import { useSkewedServer } from '../support/skewed-server.js';

/**
 * Issue 8, its last gap: a bearer token alone must not destroy secret storage or the backup by
 * OVERWRITING it either. Replacing a secret, a storage-key description, the default key or a backup
 * version's auth_data with something different needs the same recent password check as a delete
 * (LK_REAUTH_REQUIRED; on the Matrix routes 403 M_FORBIDDEN with lk_code). Creating what is not there
 * yet, and writing the very bytes already stored (a retry), stay token-only. Each attack runs with the
 * server's clock moved past FRESH_AUTH_MS and checks the bytes stayed.
 */

const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const STORAGE_ALGORITHM = 'm.secret_storage.v1.aes-hmac-sha2';
const SECRET = 'm.megolm_backup.v1';
const publicKeyOf = (fill: number) => toBase64(nobleMatrixCrypto.x25519PublicKey(new Uint8Array(32).fill(fill)));
const authData = { public_key: publicKeyOf(7) };
const attackerAuthData = { public_key: publicKeyOf(9) };
const description = { name: 'recovery', algorithm: STORAGE_ALGORITHM, iv: 'AAAAAAAAAAAAAAAAAAAAAA', mac: 'bWFj' };
const secret = { encrypted: { k1: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext: 'c2VjcmV0', mac: 'bWFj' } } };
const attackerSecret = { encrypted: { k2: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext: 'YXR0YWNr', mac: 'bWFj' } } };

describe.each(BACKENDS)('overwrites need a fresh password check (%s)', (backend) => {
  const env = useSkewedServer(backend, 'reauth_overwrites');
  const { call } = env;

  /** An account with a backup version, two described storage keys, a default key and a stored secret. */
  async function victim(name: string) {
    const { session, password } = await env.account(name);
    const token = session.state.token;
    const created = await call(token, 'POST', '/v1/backup/version', { algorithm: ALGORITHM, auth_data: authData });
    const version = created.body.version as string;
    for (const [path, body] of [
      ['/v1/secret-storage/keys/k1', description],
      ['/v1/secret-storage/keys/k2', { ...description, name: 'attacker' }],
      ['/v1/secret-storage/default-key', { key: 'k1' }],
      [`/v1/secret-storage/secrets/${SECRET}`, secret],
    ] as const) {
      expect({ path, status: (await call(token, 'PUT', path, body)).status }).toEqual({ path, status: 200 });
    }
    return { session, token, password, version };
  }

  /** Everything the overwrites could touch, as the server answers it. */
  async function holdings(token: string, version: string) {
    const replies = await Promise.all([
      call(token, 'GET', `/v1/backup/version/${version}`),
      call(token, 'GET', '/v1/secret-storage/keys'),
      call(token, 'GET', `/v1/secret-storage/secrets/${SECRET}`),
    ]);
    expect(replies.map((reply) => reply.status)).toEqual([200, 200, 200]);
    return replies.map((reply) => reply.body);
  }

  /** Each overwrite an attacker with the token would try: [method, path, body]. */
  const overwrites = (version: string): Array<[string, string, unknown]> => [
    ['PUT', `/v1/secret-storage/secrets/${SECRET}`, attackerSecret],
    ['PUT', '/v1/secret-storage/keys/k1', { ...description, mac: 'b3RoZXI' }],
    ['PUT', '/v1/secret-storage/default-key', { key: 'k2' }],
    ['PUT', `/v1/backup/version/${version}`, { algorithm: ALGORITHM, auth_data: attackerAuthData }],
  ];

  it('refuses every /v1 overwrite to a token whose password check is stale, and changes nothing', async () => {
    const { token, version } = await victim('stolen');
    const before = await holdings(token, version);
    env.skew = FRESH_AUTH_MS + 1;
    for (const [method, path, body] of overwrites(version)) {
      const reply = await call(token, method, path, body);
      expect({ path, status: reply.status, code: reply.body.code }).toEqual({
        path,
        status: 403,
        code: 'LK_REAUTH_REQUIRED',
      });
    }
    expect(await holdings(token, version)).toEqual(before);
  });

  it('refuses the Matrix auth_data overwrite in Matrix’s error shape, and changes nothing', async () => {
    const { token, version } = await victim('matrix');
    const before = await holdings(token, version);
    env.skew = FRESH_AUTH_MS + 1;
    const reply = await call(token, 'PUT', `/_matrix/client/v3/room_keys/version/${version}`, {
      algorithm: ALGORITHM,
      auth_data: attackerAuthData,
      version,
    });
    expect(reply).toEqual({
      status: 403,
      body: { errcode: 'M_FORBIDDEN', error: expect.any(String), lk_code: 'LK_REAUTH_REQUIRED' },
    });
    expect(await holdings(token, version)).toEqual(before);
  });

  it('lets a stale token create what is not there yet and write back the very bytes stored', async () => {
    const { token, version } = await victim('retry');
    env.skew = FRESH_AUTH_MS + 1;
    const writes: Array<[string, unknown]> = [
      [`/v1/secret-storage/secrets/${SECRET}`, secret],
      ['/v1/secret-storage/keys/k1', description],
      ['/v1/secret-storage/default-key', { key: 'k1' }],
      [`/v1/backup/version/${version}`, { algorithm: ALGORITHM, auth_data: authData }],
      [`/_matrix/client/v3/room_keys/version/${version}`, { algorithm: ALGORITHM, auth_data: authData, version }],
      ['/v1/secret-storage/keys/k3', { ...description, name: 'new' }],
      ['/v1/secret-storage/secrets/m.other', secret],
    ];
    for (const [path, body] of writes) {
      expect({ path, status: (await call(token, 'PUT', path, body)).status }).toEqual({ path, status: 200 });
    }
    expect((await call(token, 'GET', '/v1/secret-storage/keys/k3')).body).toEqual({ ...description, name: 'new' });
  });

  it('lets every overwrite through once the session has proved the password again', async () => {
    const { session, token, password, version } = await victim('owner');
    env.skew = FRESH_AUTH_MS + 1;
    await session.reauthenticate(password);
    for (const [method, path, body] of overwrites(version)) {
      expect({ path, status: (await call(token, method, path, body)).status }).toEqual({ path, status: 200 });
    }
    const [info, keys, stored] = await holdings(token, version);
    expect(info?.auth_data).toEqual(attackerAuthData);
    expect(keys?.default_key).toBe('k2');
    expect(stored).toEqual(attackerSecret);
  });

  /** A logged-in account with a backup enabled through the SDK, and a second keystore to check restores. */
  async function sdkOwner(name: string) {
    const { session, password, tag } = await env.account(name);
    const keystore = await session.openKeystore(`${env.server.dir}/${tag}.db`);
    const backup = session.keyBackup(keystore);
    const first = await backup.enable();
    let checks = 0;
    const opens = async (recoveryKey: string) => {
      const check = await session.openKeystore(`${env.server.dir}/${tag}-check-${++checks}.db`);
      try {
        const restored = await session.keyBackup(check).restore({ recoveryKey });
        return restored.failed === 0 ? 'opens' : 'some keys failed';
      } catch (error) {
        if (error instanceof LatchkeyError) return error.code;
        throw error;
      } finally {
        await check.close();
      }
    };
    const secretStorage = async () => [
      (await call(session.state.token, 'GET', '/v1/secret-storage/keys')).body,
      (await call(session.state.token, 'GET', `/v1/secret-storage/secrets/${SECRET}`)).body,
    ];
    return { session, password, keystore, backup, first, opens, secretStorage };
  }

  it('SDK: replaces the recovery key only after a fresh password check; refused, the old key still opens', async () => {
    const { password, keystore, backup, first, opens, secretStorage } = await sdkOwner('recovery');
    const before = await secretStorage();
    env.skew = FRESH_AUTH_MS + 1;
    expect(await codeOf(backup.replaceRecoveryKey())).toBe('LK_REAUTH_REQUIRED');
    expect(await codeOf(backup.replaceRecoveryKey({ password: 'not the password' }))).toBe('LK_LOGIN_FAILED');
    expect(await secretStorage()).toEqual(before);
    expect(await opens(first.recoveryKey)).toBe('opens');
    const { recoveryKey } = await backup.replaceRecoveryKey({ password, passphrase: 'new passphrase' });
    expect(await opens(recoveryKey)).toBe('opens');
    expect(await opens(first.recoveryKey)).toBe('LK_BAD_RECOVERY_KEY');
    await keystore.close();
  });

  it('SDK: enabling over the secret storage a deleted backup left needs the password; a first enable does not', async () => {
    const { password, keystore, backup, opens, secretStorage } = await sdkOwner('re-enable');
    // The first enable above ran on the token alone (nothing to replace); a stale one would have too.
    env.skew = FRESH_AUTH_MS + 1;
    await backup.delete(undefined, { password });
    env.skew = 2 * FRESH_AUTH_MS + 2;
    expect(await backup.enableReplaces()).toBe(true);
    const before = await secretStorage();
    expect(await codeOf(backup.enable())).toBe('LK_REAUTH_REQUIRED');
    expect(await secretStorage()).toEqual(before);
    expect(await backup.current()).toBeUndefined();
    const again = await backup.enable({ password });
    expect(await opens(again.recoveryKey)).toBe('opens');
    await keystore.close();
  });

  it('SDK: a first enable on an empty account needs no password, even with a stale session', async () => {
    const { session, tag } = await env.account('first');
    const keystore = await session.openKeystore(`${env.server.dir}/${tag}.db`);
    const backup = session.keyBackup(keystore);
    env.skew = FRESH_AUTH_MS + 1;
    expect(await backup.enableReplaces()).toBe(false);
    expect((await backup.enable()).version).toEqual(expect.any(String));
    expect(await backup.enableReplaces()).toBe(true);
    await keystore.close();
  });

  it('SDK: a restore on a stale session leaves its auth_data repair for later instead of failing', async () => {
    const { session, password, keystore, first, opens } = await sdkOwner('repair');
    const token = session.state.token;
    const path = `/v1/backup/version/${first.version}`;
    const info = (await call(token, 'GET', path)).body as { auth_data: { public_key: string } };
    // Its signature gone (as after a password reset changed the signing key): unlocking signs it again.
    const unsigned = { public_key: info.auth_data.public_key };
    expect((await call(token, 'PUT', path, { algorithm: ALGORITHM, auth_data: unsigned })).status).toBe(200);
    env.skew = FRESH_AUTH_MS + 1;
    expect(await opens(first.recoveryKey)).toBe('opens');
    expect((await call(token, 'GET', path)).body.auth_data).toEqual(unsigned);
    await session.reauthenticate(password);
    expect(await opens(first.recoveryKey)).toBe('opens');
    expect((await call(token, 'GET', path)).body.auth_data).toMatchObject({ signatures: expect.any(Object) });
    await keystore.close();
  });

  it('lets one of twelve racing creates of a name win, and refuses the rest as replacements', async () => {
    const { token } = await victim('race');
    env.skew = FRESH_AUTH_MS + 1;
    // Twelve different values for one name that does not exist yet, at once: only the first to commit
    // is a create; every other one finds it there and, being different, needs the password.
    const path = '/v1/secret-storage/secrets/m.raced';
    const bodies = Array.from({ length: 12 }, (_, i) => ({
      encrypted: { k1: { iv: 'AAAAAAAAAAAAAAAAAAAAAA', ciphertext: toBase64(new Uint8Array([i])), mac: 'bWFj' } },
    }));
    const replies = await Promise.all(bodies.map((body) => call(token, 'PUT', path, body)));
    const won = replies.flatMap((reply, i) => (reply.status === 200 ? [i] : []));
    expect(won).toHaveLength(1);
    expect(replies.filter((reply) => reply.status !== 200).map((reply) => reply.body.code)).toEqual(
      Array(11).fill('LK_REAUTH_REQUIRED'),
    );
    expect((await call(token, 'GET', path)).body).toEqual(bodies[won[0] as number]);
  });
});

/**
 * The existence check and the write must be one transaction under the account's lock, or a create
 * committed between them turns the write into an unchecked replacement. Forced on PostgreSQL: another
 * connection, playing a concurrent create by the rules every server transaction follows (the account's
 * row lock first), holds the lock while it inserts the secret; the stale token's write is sent meanwhile
 * and the create committed only once that write is waiting. A write that looked before it locked saw
 * nothing and replaced the secret; one that looks under the lock sees it and is refused. (SQLite needs
 * no such test: every transaction begins IMMEDIATE on the one connection, so nothing runs between.)
 */
describe('a create committed between the check and the write (postgres)', () => {
  let server: TestServer;
  let skew = 0;

  beforeAll(async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'), 'reauth_overwrites_race');
    server = await startTestServer({ databaseUrl }, { now: () => Date.now() + skew });
  });
  afterAll(async () => server.close());

  it('is seen by the write, which is refused as a replacement and leaves the created secret', async () => {
    const email = 'race-window@example.com';
    const { session } = await createLoggedInAccount(server, email, 'race window password');
    const described = await fetch(new URL('/v1/secret-storage/keys/k2', server.url), {
      method: 'PUT',
      headers: { authorization: `Bearer ${session.state.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(description),
    });
    expect(described.status).toBe(200);
    const creator = new pg.Client({ connectionString: server.config.databaseUrl });
    await creator.connect();
    try {
      const created = JSON.stringify(secret);
      await creator.query('begin');
      await creator.query('select id from accounts where id = $1 for no key update', [session.accountId]);
      await creator.query('insert into account_data (account_id, type, content) values ($1, $2, $3)', [
        session.accountId,
        `ssss.secret.${SECRET}`,
        created,
      ]);
      skew = FRESH_AUTH_MS + 1;
      const write = fetch(new URL(`/v1/secret-storage/secrets/${SECRET}`, server.url), {
        method: 'PUT',
        headers: { authorization: `Bearer ${session.state.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(attackerSecret),
      });
      // Until the write waits on the creator's lock (or on its row), the commit must not come.
      const waiting = async () =>
        (
          await creator.query(
            "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()",
          )
        ).rows[0].n as number;
      for (let tries = 0; (await waiting()) === 0; tries++) {
        expect(tries).toBeLessThan(200);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await creator.query('commit');
      const reply = await write;
      expect({ status: reply.status, code: ((await reply.json()) as { code?: string }).code }).toEqual({
        status: 403,
        code: 'LK_REAUTH_REQUIRED',
      });
      const stored = await creator.query('select content from account_data where account_id = $1 and type = $2', [
        session.accountId,
        `ssss.secret.${SECRET}`,
      ]);
      expect(stored.rows).toEqual([{ content: created }]);
    } finally {
      await creator.end();
    }
  });
});
