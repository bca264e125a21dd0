import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeRecoveryKey,
  deriveSecretStorageKeyFromKB,
  fromBase64,
  fromBase64Url,
  fromUtf8,
  type MasterKey,
  openAtRest,
  type RoomKey,
  toBase64,
  utf8,
} from '@latchkey/core';
import { connect, openStore } from '@latchkey/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';
import { rawLogin } from '../support/raw-login.js';
import { makeRoomKeys } from '../support/room-keys.js';
import { findSecrets, type Secret, searchedSize } from '../support/secret-search.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * The server must never hold a password, an OPAQUE export key, kB or a bearer token in a form that
 * reveals it, nor anything of the key backup it keeps (issue 3): the backup private key, the recovery
 * key, the backup passphrase or a room key. This drives an account through sign-up, login, password
 * change and reset, then a backup enable, upload and restore, collecting every such secret, then
 * searches the database's files byte for byte in every common spelling. Values the server does store
 * (the email, the backup public key) are searched too, to show the search finds what is there.
 */

const EMAIL = 'secret-keeper@example.com';
const PASSWORDS = ['first Pässwörd 1', 'second Pässwörd 2', 'third Pässwörd 3'] as const;
const BACKUP_PASSPHRASE = 'backup passphrase: Smörgåsbord 42';
const ROOM_KEYS = 40;
/** Which uploaded room keys' session keys are searched for: the first, a few between, the last. */
const SEARCHED_ROOM_KEYS = [0, 1, 17, 23, ROOM_KEYS - 1];

/** The full account life cycle; returns every secret it saw. */
async function exerciseAccount(server: TestServer): Promise<Secret[]> {
  const email = EMAIL;
  const [first, second, third] = PASSWORDS;
  const secrets: Secret[] = [];
  const keep = (name: string, bytes: Uint8Array) => secrets.push({ name, bytes: new Uint8Array(bytes) });

  const { client } = await createVerifiedAccount(server, email, first);
  const session = await client.logIn(email, first);
  keep('password 1', utf8(first));
  keep('kB (sign-up)', session.kB);
  keep('kA', session.kA);
  keep('session token 1', fromBase64Url(session.state.token));
  keep('export key 1', (await rawLogin(server.url, email, first)).exportKey);

  await session.changePassword(first, second);
  keep('password 2', utf8(second));
  keep('export key 2', (await rawLogin(server.url, email, second)).exportKey);

  const sent = server.smtp.messages.length;
  await client.requestReset(email);
  await client.completeReset(email, await server.smtp.codeFor(email, { after: sent }), third);
  const afterReset = await client.logIn(email, third);
  keep('password 3', utf8(third));
  keep('kB (after reset)', afterReset.kB);
  keep('session token 2', fromBase64Url(afterReset.state.token));
  keep('export key 3', (await rawLogin(server.url, email, third)).exportKey);
  return secrets;
}

/**
 * Backup with a passphrase: device A uploads its room keys, device B restores them with the recovery
 * key. Returns the secrets of the run, and values the server stores in clear for the positive control.
 * The devices' keystores live in `deviceDir`, apart from the server's files.
 */
async function exerciseBackup(server: TestServer, deviceDir: string): Promise<{ secrets: Secret[]; stored: Secret[] }> {
  const secrets: Secret[] = [];
  const keep = (name: string, bytes: Uint8Array) => secrets.push({ name, bytes: new Uint8Array(bytes) });
  const keys = makeRoomKeys(ROOM_KEYS, 10);
  const searched = SEARCHED_ROOM_KEYS.map((index) => keys[index] as RoomKey);

  const deviceA = await server.client().logIn(EMAIL, PASSWORDS[2], { deviceName: 'device A' });
  const storeA = await deviceA.openKeystore(join(deviceDir, 'device-a.db'));
  expect(await storeA.addRoomKeys(keys.map((key) => ({ key })))).toBe(ROOM_KEYS);
  const { recoveryKey, version } = await deviceA.keyBackup(storeA).enable({ passphrase: BACKUP_PASSPHRASE });
  expect(await deviceA.keyBackup(storeA).uploadPending()).toEqual({ uploaded: ROOM_KEYS, version });
  await storeA.close();

  const deviceB = await server.client().logIn(EMAIL, PASSWORDS[2], { deviceName: 'device B' });
  const storeB = await deviceB.openKeystore(join(deviceDir, 'device-b.db'));
  const backupB = deviceB.keyBackup(storeB);
  expect(await backupB.restore({ recoveryKey })).toEqual({
    version,
    total: ROOM_KEYS,
    imported: ROOM_KEYS,
    failed: 0,
    refused: 0,
    refusals: {},
  });
  const info = await backupB.current();
  if (info === undefined) throw new Error('the backup vanished');
  const backupKey = await backupB.unlock({ recoveryKey }, info);
  for (const key of searched) {
    // Each key searched for below is one the backup carried and gave back.
    expect((await storeB.getRoomKey(key.room_id, key.session_id))?.key).toEqual(key);
  }
  await storeB.close();

  keep('backup private key', backupKey);
  // With a passphrase, the recovery key encodes the passphrase-derived secret-storage key.
  keep('recovery key (32 bytes)', decodeRecoveryKey(recoveryKey));
  keep('recovery key (base58, as shown)', utf8(recoveryKey));
  keep('recovery key (base58, no spaces)', utf8(recoveryKey.replaceAll(' ', '')));
  keep('backup passphrase', utf8(BACKUP_PASSPHRASE));
  keep('secret-storage key derived from kB', deriveSecretStorageKeyFromKB(deviceB.kB));
  keep('session token (device A)', fromBase64Url(deviceA.state.token));
  keep('session token (device B)', fromBase64Url(deviceB.state.token));
  for (const key of searched) keep(`session_key of ${key.room_id} ${key.session_id}`, fromBase64(key.session_key));
  const publicKey = fromBase64(info.auth_data.public_key);
  expect(toBase64(publicKey)).toBe(info.auth_data.public_key);
  return { secrets, stored: [{ name: 'backup public key', bytes: publicKey }] };
}

/**
 * The OPAQUE server setup, opened as the server opens it. It holds the OPRF seed: with it, a stolen
 * database's records could be guessed at offline, so the database alone must hold it only sealed.
 */
async function opaqueServerSetup(server: TestServer): Promise<Secret> {
  const store = await openStore(connect(server.config.databaseUrl));
  try {
    const sealed = await store.getServerSecret('opaque_server_setup');
    if (sealed === undefined) throw new Error('the server made no OPAQUE setup');
    const masterKey = new Uint8Array(readFileSync(server.config.masterKeyFile)) as MasterKey;
    const setup = fromUtf8(openAtRest(masterKey, 'server-secret', 'opaque_server_setup', sealed));
    return { name: 'OPAQUE server setup (OPRF seed)', bytes: fromBase64Url(setup) };
  } finally {
    await store.close();
  }
}

/** Every secret of the account and backup runs; the stored values must be found, the secrets must not. */
function expectNoSecretIn(root: string, secrets: Secret[], stored: Secret[]) {
  // The search must be able to see what it looks for: the email and the backup public key are stored,
  // the key as auth_data carries it (unpadded base64, as Matrix writes it).
  expect(findSecrets(root, [{ name: 'email', bytes: utf8(EMAIL) }])).not.toEqual([]);
  const found = findSecrets(root, stored).filter((hit) => hit.secret === 'backup public key');
  expect(found.map((hit) => hit.encoding)).toContain('base64-unpadded');
  expect(findSecrets(root, secrets)).toEqual([]);
}

describe('no secret at rest: SQLite', () => {
  let server: TestServer;
  let deviceDir: string;
  beforeAll(async () => {
    server = await startTestServer();
    deviceDir = mkdtempSync(join(tmpdir(), 'latchkey-secrets-devices-'));
  });
  afterAll(async () => {
    await server?.close();
    if (deviceDir !== undefined) rmSync(deviceDir, { recursive: true, force: true });
  });

  it('the database files hold no password, export key, kB, kA, token, OPRF seed, backup key, recovery key, passphrase or room key', async () => {
    const secrets = [...(await exerciseAccount(server)), await opaqueServerSetup(server)];
    expect(secrets).toHaveLength(12);
    const backup = await exerciseBackup(server, deviceDir);
    expect(backup.secrets).toHaveLength(8 + SEARCHED_ROOM_KEYS.length);
    await server.app.close(); // flushes the WAL into the main file; both are searched anyway
    const files = searchedSize(server.dir);
    expect(files.bytes).toBeGreaterThan(10_000);
    expectNoSecretIn(server.dir, [...secrets, ...backup.secrets], backup.stored);
  });
});

describe('no secret at rest: PostgreSQL', () => {
  let cluster: PostgresCluster;
  let server: TestServer;
  let deviceDir: string;
  beforeAll(async () => {
    cluster = await startPostgres();
    server = await startTestServer({ databaseUrl: await cluster.createDatabase('secrets') });
    deviceDir = mkdtempSync(join(tmpdir(), 'latchkey-secrets-devices-'));
  });
  afterAll(async () => {
    await server?.close();
    await cluster?.stop();
    if (deviceDir !== undefined) rmSync(deviceDir, { recursive: true, force: true });
  });

  it('the data directory (tables and WAL) holds no password, export key, kB, kA, token, OPRF seed or backup secret', async () => {
    const secrets = [...(await exerciseAccount(server)), await opaqueServerSetup(server)];
    const backup = await exerciseBackup(server, deviceDir);
    await server.app.close();
    await cluster.checkpoint();
    const files = searchedSize(cluster.dataDir);
    expect(files.bytes).toBeGreaterThan(1_000_000);
    expectNoSecretIn(cluster.dataDir, [...secrets, ...backup.secrets], backup.stored);
  });
});
