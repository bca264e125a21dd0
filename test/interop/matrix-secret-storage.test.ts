import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Session, Transport } from '@latchkey/client';
import {
  type BackupVersionInfoBody,
  canonicalJson,
  decodeRecoveryKey,
  decryptSecretBytes,
  deriveBackupSigningSeed,
  deriveSecretStorageKeyFromKB,
  type EncryptedSecret,
  fromUtf8,
  LatchkeyError,
  type SecretItemBody,
  type StorageKeyListBody,
  toBase64,
  utf8,
} from '@latchkey/core';
import * as wasm from '@matrix-org/matrix-sdk-crypto-wasm';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ClientEvent, type ClientEventHandlerMap } from 'matrix-js-sdk/lib/client.js';
import { deriveRecoveryKeyFromPassphrase } from 'matrix-js-sdk/lib/crypto-api/key-passphrase.js';
import {
  decodeRecoveryKey as jsDecodeRecoveryKey,
  encodeRecoveryKey as jsEncodeRecoveryKey,
} from 'matrix-js-sdk/lib/crypto-api/recovery-key.js';
import { MatrixEvent } from 'matrix-js-sdk/lib/models/event.js';
import { TypedEventEmitter } from 'matrix-js-sdk/lib/models/typed-event-emitter.js';
import {
  type AccountDataClient,
  SECRET_STORAGE_ALGORITHM_V1_AES,
  type SecretStorageKeyDescriptionAesV1,
  ServerSideSecretStorageImpl,
} from 'matrix-js-sdk/lib/secret-storage.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeMatrixCrypto as crypto } from '../../packages/client/src/platform/node-crypto.js';
import { asyncLatchkeyErrorOf } from '../support/errors.js';
import { makeRoomKeys } from '../support/room-keys.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * Secret storage and key backup shared with a Matrix client, end to end over HTTP: matrix-js-sdk's own
 * secret-storage code (ServerSideSecretStorageImpl) reads and writes Latchkey's secrets API through
 * an account-data client, matrix-sdk-crypto-wasm makes and reads the backup keys, and our SDK restores
 * what they made (and the reverse). Nothing on either side is an imitation of the other.
 */

const BACKUP_SECRET = 'm.megolm_backup.v1';
const KEY_PREFIX = 'm.secret_storage.key.';
const DEFAULT_KEY = 'm.secret_storage.default_key';

type AccountDataMethods = Pick<AccountDataClient, 'getAccountDataFromServer' | 'setAccountData'>;

/**
 * matrix-js-sdk's view of account data, mapped onto Latchkey's secret-storage routes. After a write
 * the value is read back from the server and announced as a sync would (setDefaultKeyId waits for it).
 */
class LatchkeyAccountData
  extends TypedEventEmitter<ClientEvent.AccountData, ClientEventHandlerMap>
  implements AccountDataMethods
{
  private readonly transport: Transport;

  constructor(
    serverUrl: string,
    private readonly token: string,
  ) {
    super();
    this.transport = new Transport(serverUrl);
  }

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.transport.request<T>(method, path, { token: this.token, ...(body === undefined ? {} : { body }) });
  }

  private async read(type: string): Promise<unknown> {
    try {
      if (type === DEFAULT_KEY) {
        const { default_key } = await this.call<StorageKeyListBody>('GET', '/v1/secret-storage/keys');
        return default_key === null ? null : { key: default_key };
      }
      if (type.startsWith(KEY_PREFIX))
        return await this.call('GET', `/v1/secret-storage/keys/${encodeURIComponent(type.slice(KEY_PREFIX.length))}`);
      return await this.call('GET', `/v1/secret-storage/secrets/${encodeURIComponent(type)}`);
    } catch (error) {
      if (error instanceof LatchkeyError && error.code === 'LK_SECRET_NOT_FOUND') return null;
      throw error;
    }
  }

  private async write(type: string, content: unknown): Promise<void> {
    if (type === DEFAULT_KEY) await this.call('PUT', '/v1/secret-storage/default-key', content);
    else if (type.startsWith(KEY_PREFIX))
      await this.call('PUT', `/v1/secret-storage/keys/${encodeURIComponent(type.slice(KEY_PREFIX.length))}`, content);
    else await this.call('PUT', `/v1/secret-storage/secrets/${encodeURIComponent(type)}`, content);
  }

  getAccountDataFromServer = (async (type: string) => this.read(type)) as AccountDataClient['getAccountDataFromServer'];

  setAccountData = (async (type: string, content: unknown) => {
    await this.write(type, content);
    const echoed = await this.read(type);
    this.emit(ClientEvent.AccountData, new MatrixEvent({ type, content: echoed as Record<string, unknown> }));
    return {};
  }) as AccountDataClient['setAccountData'];
}

/** matrix-js-sdk's secret storage for `session`, answering key requests from `held` (keyId → key). */
function jsSecretStorage(server: TestServer, session: Session, held: Map<string, Uint8Array>) {
  const accountData = new LatchkeyAccountData(server.url, session.state.token);
  return new ServerSideSecretStorageImpl(accountData as unknown as AccountDataClient, {
    getSecretStorageKey: async ({ keys }) => {
      for (const keyId of Object.keys(keys)) {
        const key = held.get(keyId);
        if (key !== undefined) return [keyId, key];
      }
      return null;
    },
  });
}

const vectors = JSON.parse(
  readFileSync(new URL('../../packages/core/vectors/matrix-key-export.json', import.meta.url), 'utf8'),
);
const sessions = JSON.parse((vectors.rust as { plaintext: string }).plaintext) as Array<{
  room_id: string;
  session_id: string;
  session_key: string;
}>;

/** An authenticated call to Latchkey's own API, as the test's "Matrix client" makes it. */
function api(server: TestServer, session: Session) {
  const transport = new Transport(server.url);
  return <T>(method: string, path: string, body?: unknown) =>
    transport.request<T>(method, path, { token: session.state.token, ...(body === undefined ? {} : { body }) });
}

/**
 * What a Matrix client does to set up backup (matrix-js-sdk `bootstrapSecretStorage` and
 * `resetKeyBackup`): a backup key from matrix-sdk-crypto-wasm, stored with secret storage, a backup
 * version whose auth_data carries its public key, and the keys wasm's OlmMachine encrypts for it.
 */
async function matrixClientBackup(server: TestServer, session: Session, storeUnder: string[] | undefined) {
  const held = new Map<string, Uint8Array>();
  const secretStorage = jsSecretStorage(server, session, held);
  const backupKey = wasm.BackupDecryptionKey.createRandomKey();
  const call = api(server, session);
  const publicKey = backupKey.megolmV1PublicKey.publicKeyBase64;
  const machine = await wasm.OlmMachine.initialize(new wasm.UserId('@alice:example.org'), new wasm.DeviceId('ALICE'));
  // auth_data signed by the Matrix client's device (Matrix signed JSON), as a client does to trust it.
  const unsigned = { public_key: publicKey };
  const signatures = JSON.parse((await machine.sign(canonicalJson(unsigned))).asJSON()) as Record<string, unknown>;
  const { version } = await call<{ version: string }>('POST', '/v1/backup/version', {
    algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
    auth_data: { ...unsigned, signatures },
  });
  await machine.importExportedRoomKeys(JSON.stringify(sessions), () => {});
  await machine.enableBackupV1(publicKey, version);
  const request = (await machine.backupRoomKeys()) as wasm.KeysBackupRequest;
  await call('PUT', `/v1/backup/keys?version=${version}`, JSON.parse(request.body));
  return {
    machine,
    held,
    secretStorage,
    publicKey,
    version,
    /** Adds a storage key as matrix-js-sdk does (random key id), optionally from a passphrase. */
    async addKey(options: { passphrase?: string; makeDefault?: boolean } = {}) {
      let key: Uint8Array;
      let passphrase: { algorithm: 'm.pbkdf2'; salt: string; iterations: number } | undefined;
      if (options.passphrase === undefined) key = globalThis.crypto.getRandomValues(new Uint8Array(32));
      else {
        passphrase = { algorithm: 'm.pbkdf2', salt: randomSalt(), iterations: 10_000 };
        key = await deriveRecoveryKeyFromPassphrase(options.passphrase, passphrase.salt, passphrase.iterations);
      }
      const { keyId } = await secretStorage.addKey(SECRET_STORAGE_ALGORITHM_V1_AES, {
        key,
        name: 'Matrix client key',
        ...(passphrase === undefined ? {} : { passphrase }),
      });
      held.set(keyId, key);
      if (options.makeDefault !== false) await secretStorage.setDefaultKeyId(keyId);
      return { keyId, key, recoveryKey: jsEncodeRecoveryKey(key) as string };
    },
    /** Stores the backup key (base64, as matrix-js-sdk does) under the given keys, or the default key. */
    storeBackupKey: (keys = storeUnder) => secretStorage.store(BACKUP_SECRET, backupKey.toBase64(), keys ?? null),
  };
}

function randomSalt(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(32)), (b) => alphabet[b % 62]).join('');
}

describe('a backup set up by matrix-js-sdk, restored by our SDK over HTTP', () => {
  let server: TestServer;
  let dir: string;
  let n = 0;

  beforeAll(async () => {
    await wasm.initAsync();
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-matrix-ssss-'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function newAccount() {
    n += 1;
    const email = `matrix${n}@example.com`;
    const { client } = await createVerifiedAccount(server, email, 'matrix password');
    return { session: await client.logIn(email, 'matrix password'), email };
  }

  async function restoreOnNewDevice(email: string, secret: { recoveryKey: string } | { passphrase: string }) {
    const session = await server.client().logIn(email, 'matrix password');
    n += 1;
    const keystore = await session.openKeystore(join(dir, `device-${n}.db`));
    try {
      const result = await session.keyBackup(keystore).restore(secret);
      const held = await Promise.all(sessions.map((s) => keystore.getRoomKey(s.room_id, s.session_id)));
      return { result, sessionKeys: held.map((stored) => stored?.key.session_key) };
    } finally {
      await keystore.close();
      await session.logOut();
    }
  }

  it('follows default_key to the key matrix-js-sdk made (random id, with a passphrase): recovery key and passphrase both restore', async () => {
    const { session, email } = await newAccount();
    const matrix = await matrixClientBackup(server, session, undefined);
    const { keyId, recoveryKey } = await matrix.addKey({ passphrase: 'a Matrix passphrase' });
    await matrix.storeBackupKey();
    expect(keyId).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(await matrix.secretStorage.getDefaultKeyId()).toBe(keyId);
    // The backup's auth_data carries the public key of the secret matrix-js-sdk itself reads back.
    const stored = await matrix.secretStorage.get(BACKUP_SECRET);
    expect(wasm.BackupDecryptionKey.fromBase64(stored as string).megolmV1PublicKey.publicKeyBase64).toBe(
      matrix.publicKey,
    );
    const info = await api(server, session)<BackupVersionInfoBody>('GET', '/v1/backup/version');
    expect(info).toMatchObject({ version: matrix.version, count: sessions.length });
    expect(info.auth_data.public_key).toBe(matrix.publicKey);

    const expected = sessions.map((s) => s.session_key);
    const byKey = await restoreOnNewDevice(email, { recoveryKey });
    expect(byKey.result).toMatchObject({ total: sessions.length, imported: sessions.length, failed: 0 });
    expect(byKey.sessionKeys).toEqual(expected);
    const byPassphrase = await restoreOnNewDevice(email, { passphrase: 'a Matrix passphrase' });
    expect(byPassphrase.result).toMatchObject({ total: sessions.length, failed: 0 });
    expect(byPassphrase.sessionKeys).toEqual(expected);
    // `recovery verify` knows the Matrix client's key as this account's, and no other.
    const checker = await server.client().logIn(email, 'matrix password');
    const keystore = await checker.openKeystore(join(dir, 'checker.db'));
    expect(await checker.keyBackup(keystore).verifyRecoveryKey(recoveryKey)).toBe('valid');
    const wrong = jsEncodeRecoveryKey(globalThis.crypto.getRandomValues(new Uint8Array(32))) as string;
    expect(await checker.keyBackup(keystore).verifyRecoveryKey(wrong)).toBe('invalid');
    await keystore.close();
    await checker.logOut();
    // Restoring changed nothing the Matrix client relies on: matrix-js-sdk still opens the backup key
    // with its own key, and wasm still finds its device's signature on auth_data, beside ours.
    expect(await matrix.secretStorage.get(BACKUP_SECRET)).toBe(stored);
    expect(await matrix.secretStorage.getDefaultKeyId()).toBe(keyId);
    const signed = await api(server, session)<BackupVersionInfoBody>('GET', '/v1/backup/version');
    expect(Object.keys(signed.auth_data.signatures ?? {}).sort()).toEqual(
      ['@alice:example.org', `@${session.accountId}:latchkey.invalid`].sort(),
    );
    const verification = await matrix.machine.verifyBackup({
      algorithm: signed.algorithm,
      auth_data: signed.auth_data,
    });
    expect(verification.deviceState).toBe(wasm.SignatureState.ValidAndTrusted);
    matrix.machine.free();
    await session.logOut();
  });

  it('with several keys: any key the backup key is stored under opens it, a replaced one does not', async () => {
    const { session, email } = await newAccount();
    const matrix = await matrixClientBackup(server, session, undefined);
    const old = await matrix.addKey({ passphrase: 'the old passphrase' });
    await matrix.storeBackupKey();
    // The user resets their recovery key in Element: a new default key; the secret is stored again
    // under it, and (here) also kept under the old one, which is no longer the default.
    const current = await matrix.addKey({ passphrase: 'the new passphrase' });
    const other = await matrix.addKey({ makeDefault: false });
    await matrix.storeBackupKey([old.keyId, current.keyId]);
    expect(await matrix.secretStorage.getDefaultKeyId()).toBe(current.keyId);

    for (const secret of [
      { recoveryKey: current.recoveryKey },
      { passphrase: 'the new passphrase' },
      { recoveryKey: old.recoveryKey },
      { passphrase: 'the old passphrase' },
    ]) {
      expect((await restoreOnNewDevice(email, secret)).result).toMatchObject({ total: sessions.length, failed: 0 });
    }
    // A described key the backup key is not stored under opens nothing: refused before any import.
    const notHolding = await asyncLatchkeyErrorOf(restoreOnNewDevice(email, { recoveryKey: other.recoveryKey }));
    expect(notHolding).toMatchObject({ code: 'LK_BAD_RECOVERY_KEY', details: { reason: 'not-for-backup' } });
    // Now the secret is stored under the new key only (what a reset does): the old key is refused.
    await matrix.storeBackupKey([current.keyId]);
    expect(await asyncLatchkeyErrorOf(restoreOnNewDevice(email, { recoveryKey: old.recoveryKey }))).toMatchObject({
      code: 'LK_BAD_RECOVERY_KEY',
      details: { reason: 'not-for-backup' },
    });
    expect((await asyncLatchkeyErrorOf(restoreOnNewDevice(email, { passphrase: 'the old passphrase' }))).code).toBe(
      'LK_BAD_PASSPHRASE',
    );
    expect((await restoreOnNewDevice(email, { recoveryKey: current.recoveryKey })).result.failed).toBe(0);
    const wrong = jsEncodeRecoveryKey(globalThis.crypto.getRandomValues(new Uint8Array(32))) as string;
    expect(await asyncLatchkeyErrorOf(restoreOnNewDevice(email, { recoveryKey: wrong }))).toMatchObject({
      code: 'LK_BAD_RECOVERY_KEY',
      details: { reason: 'mismatch' },
    });
    matrix.machine.free();
    await session.logOut();
  });

  it('tampered on the server, the secret or its key check is refused by matrix-js-sdk and by us alike', async () => {
    const { session, email } = await newAccount();
    const matrix = await matrixClientBackup(server, session, undefined);
    const { keyId, key, recoveryKey } = await matrix.addKey();
    await matrix.storeBackupKey();
    const call = api(server, session);
    const item = await call<SecretItemBody>('GET', `/v1/secret-storage/secrets/${BACKUP_SECRET}`);
    const good = item.encrypted[keyId] as EncryptedSecret;
    const description = await call<SecretStorageKeyDescriptionAesV1>(
      'GET',
      `/v1/secret-storage/keys/${encodeURIComponent(keyId)}`,
    );
    const flip = (text: string, byte: number) => {
      const bytes = Buffer.from(text, 'base64');
      bytes[byte] = (bytes[byte] as number) ^ 1;
      return bytes.toString('base64');
    };
    for (const [what, tampered] of Object.entries({
      mac: { ...good, mac: flip(good.mac, 31) },
      ciphertext: { ...good, ciphertext: flip(good.ciphertext, 0) },
    })) {
      await call('PUT', `/v1/secret-storage/secrets/${BACKUP_SECRET}`, { encrypted: { [keyId]: tampered } });
      await expect(matrix.secretStorage.get(BACKUP_SECRET), what).rejects.toThrow(/bad MAC/);
      const ours = await asyncLatchkeyErrorOf(restoreOnNewDevice(email, { recoveryKey }));
      expect({ what, code: ours.code }).toEqual({ what, code: 'LK_SECRET_DECRYPT_FAILED' });
    }
    await call('PUT', `/v1/secret-storage/secrets/${BACKUP_SECRET}`, item);
    // The key check: matrix-js-sdk says the key does not match, we refuse the key.
    const badCheck = { ...description, mac: flip(description.mac, 0) };
    await call('PUT', `/v1/secret-storage/keys/${encodeURIComponent(keyId)}`, badCheck);
    expect(await matrix.secretStorage.checkKey(key, badCheck)).toBe(false);
    expect((await asyncLatchkeyErrorOf(restoreOnNewDevice(email, { recoveryKey }))).code).toBe('LK_BAD_RECOVERY_KEY');
    // Restored as it was, both open it again.
    await call('PUT', `/v1/secret-storage/keys/${encodeURIComponent(keyId)}`, description);
    expect(await matrix.secretStorage.checkKey(key, description)).toBe(true);
    expect((await restoreOnNewDevice(email, { recoveryKey })).result.failed).toBe(0);
    matrix.machine.free();
    await session.logOut();
  });
});

describe('what our SDK writes, matrix-js-sdk reads with its own secret storage', () => {
  let server: TestServer;
  let dir: string;

  beforeAll(async () => {
    await wasm.initAsync();
    server = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'latchkey-matrix-ssss-'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('opens the backup key with our recovery key and with our passphrase, and decrypts our uploads with it', async () => {
    const email = 'ours@example.com';
    const { client } = await createVerifiedAccount(server, email, 'our password');
    const session = await client.logIn(email, 'our password');
    const keystore = await session.openKeystore(join(dir, 'ours.db'));
    const keys = makeRoomKeys(5);
    await keystore.addRoomKeys(keys.map((key) => ({ key })));
    const backup = session.keyBackup(keystore);
    const { recoveryKey, version } = await backup.enable({ passphrase: 'our passphrase' });
    await backup.uploadPending();

    const held = new Map<string, Uint8Array>();
    const secretStorage = jsSecretStorage(server, session, held);
    const defaultKey = await secretStorage.getKey();
    expect(defaultKey).not.toBeNull();
    const [keyId, keyInfo] = defaultKey as [string, SecretStorageKeyDescriptionAesV1];
    expect(await secretStorage.getDefaultKeyId()).toBe(keyId);
    const fromRecoveryKey = jsDecodeRecoveryKey(recoveryKey);
    expect(await secretStorage.checkKey(fromRecoveryKey, keyInfo)).toBe(true);
    const { salt, iterations } = keyInfo.passphrase;
    const fromPassphrase = await deriveRecoveryKeyFromPassphrase('our passphrase', salt, iterations);
    expect(Buffer.from(fromPassphrase).toString('hex')).toBe(Buffer.from(fromRecoveryKey).toString('hex'));
    const wrongPassphrase = await deriveRecoveryKeyFromPassphrase('not our passphrase', salt, iterations);
    expect(await secretStorage.checkKey(wrongPassphrase, keyInfo)).toBe(false);
    expect(Object.keys((await secretStorage.isStored(BACKUP_SECRET)) ?? {})).toContain(keyId);

    held.set(keyId, fromPassphrase);
    const stored = (await secretStorage.get(BACKUP_SECRET)) as string;
    const backupKey = wasm.BackupDecryptionKey.fromBase64(stored);
    const call = api(server, session);
    const info = await call<BackupVersionInfoBody>('GET', '/v1/backup/version');
    expect(info.version).toBe(version);
    expect(backupKey.megolmV1PublicKey.publicKeyBase64).toBe(info.auth_data.public_key);
    // matrix-sdk-crypto parses our auth_data (its signatures are keyed by a user ID, as it requires).
    const machine = await wasm.OlmMachine.initialize(new wasm.UserId('@bob:example.org'), new wasm.DeviceId('BOB'));
    const verification = await machine.verifyBackup({ algorithm: info.algorithm, auth_data: info.auth_data });
    expect(verification.trusted()).toBe(false); // signed by no key of bob's, as it should be
    machine.free();
    const page = await call<{
      keys: Array<{ room_id: string; session_id: string; session_data: Record<string, string> }>;
    }>('GET', `/v1/backup/keys?version=${version}`);
    expect(page.keys).toHaveLength(keys.length);
    for (const item of page.keys) {
      const { ephemeral, mac, ciphertext } = item.session_data as {
        ephemeral: string;
        mac: string;
        ciphertext: string;
      };
      const plaintext = JSON.parse(backupKey.decryptV1(ephemeral, mac, ciphertext)) as { session_key: string };
      const original = keys.find((k) => k.room_id === item.room_id && k.session_id === item.session_id);
      expect(plaintext.session_key).toBe(original?.session_key);
    }

    // And the other way at the level of one item: matrix-js-sdk stores a secret under our default key,
    // our core opens it with the recovery key.
    await secretStorage.store('m.cross_signing.master', 'a cross-signing seed');
    const item = await call<SecretItemBody>('GET', '/v1/secret-storage/secrets/m.cross_signing.master');
    expect(Object.keys(item.encrypted)).toEqual([keyId]);
    const opened = decryptSecretBytes(
      crypto,
      decodeRecoveryKey(recoveryKey),
      'm.cross_signing.master',
      item.encrypted[keyId] as EncryptedSecret,
    );
    expect(fromUtf8(opened)).toBe('a cross-signing seed');
    await keystore.close();
    await session.logOut();
  });

  it('a backup signed under the bare account id (as earlier versions did) is trusted, and signed again as Matrix reads it at restore', async () => {
    const email = 'legacy-signer@example.com';
    const { client } = await createVerifiedAccount(server, email, 'our password');
    const session = await client.logIn(email, 'our password');
    const keystore = await session.openKeystore(join(dir, 'legacy.db'));
    await keystore.addRoomKeys(makeRoomKeys(2).map((key) => ({ key })));
    const backup = session.keyBackup(keystore);
    const { recoveryKey, version } = await backup.enable();
    const call = api(server, session);
    const info = await call<BackupVersionInfoBody>('GET', '/v1/backup/version');
    const unsigned = { public_key: info.auth_data.public_key };
    const legacy = ed25519.sign(utf8(canonicalJson(unsigned)), deriveBackupSigningSeed(session.kB));
    await call('PUT', `/v1/backup/version/${version}`, {
      algorithm: info.algorithm,
      auth_data: { ...unsigned, signatures: { [session.accountId]: { 'ed25519:latchkey-backup': toBase64(legacy) } } },
    });
    const machine = await wasm.OlmMachine.initialize(new wasm.UserId('@bob:example.org'), new wasm.DeviceId('BOB'));
    const legacyInfo = await call<BackupVersionInfoBody>('GET', '/v1/backup/version');
    // What the bare account id does to a Matrix client: it cannot even read the auth_data.
    const parse = (authData: unknown) =>
      Promise.resolve().then(() => machine.verifyBackup({ algorithm: info.algorithm, auth_data: authData }));
    await expect(parse(legacyInfo.auth_data)).rejects.toThrow(/sigil/);
    expect(await backup.status()).toMatchObject({ trusted: true, pending: 2 });
    expect((await backup.uploadPending()).uploaded).toBe(2);

    await backup.restore({ recoveryKey });
    const after = await call<BackupVersionInfoBody>('GET', '/v1/backup/version');
    expect(Object.keys(after.auth_data.signatures ?? {})).toEqual([`@${session.accountId}:latchkey.invalid`]);
    expect(after.auth_data.public_key).toBe(info.auth_data.public_key);
    expect((await machine.verifyBackup({ algorithm: after.algorithm, auth_data: after.auth_data })).trusted()).toBe(
      false,
    );
    expect(await backup.status()).toMatchObject({ trusted: true, pending: 0 });
    machine.free();
    await keystore.close();
    await session.logOut();
  });

  it("after a password reset, restoring keeps a Matrix client's copy of the backup key; replacing the recovery key makes ours the default", async () => {
    const email = 'shared-with-matrix@example.com';
    const { client } = await createVerifiedAccount(server, email, 'password one');
    const before = await client.logIn(email, 'password one');
    const firstStore = await before.openKeystore(join(dir, 'shared-before.db'));
    const { recoveryKey } = await before.keyBackup(firstStore).enable();
    await firstStore.close();
    // A Matrix client adds its own key as the default and stores the backup key under it too.
    const held = new Map<string, Uint8Array>([
      ['recovery', jsDecodeRecoveryKey(recoveryKey)],
      ['kb', deriveSecretStorageKeyFromKB(before.kB)],
    ]);
    const matrixStorage = jsSecretStorage(server, before, held);
    const stored = (await matrixStorage.get(BACKUP_SECRET)) as string;
    const matrixKey = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const { keyId } = await matrixStorage.addKey(SECRET_STORAGE_ALGORITHM_V1_AES, { key: matrixKey });
    held.set(keyId, matrixKey);
    await matrixStorage.setDefaultKeyId(keyId);
    await matrixStorage.store(BACKUP_SECRET, stored, ['recovery', 'kb', keyId]);
    await before.logOut();

    // A password reset: kB is new, so the logged-in copy opens with nothing until a recovery-key restore.
    const sent = server.smtp.messages.length;
    await client.requestReset(email);
    await client.completeReset(email, await server.smtp.codeFor(email, { after: sent }), 'password two');
    const after = await client.logIn(email, 'password two');
    const keystore = await after.openKeystore(join(dir, 'shared-after.db'));
    const backup = after.keyBackup(keystore);
    await backup.restore({ recoveryKey });
    const item = await api(server, after)<SecretItemBody>('GET', `/v1/secret-storage/secrets/${BACKUP_SECRET}`);
    expect(Object.keys(item.encrypted).sort()).toEqual(['kb', 'recovery', keyId].sort());
    // The Matrix client, holding only its own key, still opens it.
    const onlyMatrix = jsSecretStorage(server, after, new Map([[keyId, matrixKey]]));
    expect(await onlyMatrix.get(BACKUP_SECRET)).toBe(stored);

    // Replacing the recovery key: the new one becomes the default a Matrix client uses, and opens the
    // backup key there; every older key, the Matrix client's too, opens nothing.
    const { recoveryKey: newRecoveryKey } = await backup.replaceRecoveryKey();
    const withNew = jsSecretStorage(server, after, new Map([['recovery', jsDecodeRecoveryKey(newRecoveryKey)]]));
    expect(await withNew.getDefaultKeyId()).toBe('recovery');
    const [defaultId, defaultInfo] = (await withNew.getKey()) as [string, SecretStorageKeyDescriptionAesV1];
    expect(await withNew.checkKey(jsDecodeRecoveryKey(newRecoveryKey), defaultInfo)).toBe(true);
    expect(await withNew.get(BACKUP_SECRET)).toBe(stored);
    expect(Object.keys((await withNew.isStored(BACKUP_SECRET)) ?? {}).sort()).toEqual(['kb', defaultId].sort());
    await expect(onlyMatrix.get(BACKUP_SECRET)).rejects.toThrow();
    await keystore.close();
    await after.logOut();
  });
});
