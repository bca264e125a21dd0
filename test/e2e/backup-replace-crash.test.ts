import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LatchkeyClient, type LocalKeystore, type RoomKey, type Session } from '@latchkey/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRoomKeys } from '../support/room-keys.js';
import { startTestServer, TEST_KEY_STRETCHING, type TestServer } from '../support/server.js';

/**
 * Replacing a backup (`enable({ replace: true })`) is several requests: the old backup's keys are
 * carried onto the device, the new backup key goes into secret storage, the new version is created,
 * and the old one is deleted. The server is stopped between two of them, as a crash of the client or
 * the server would stop the sequence there, then started again on the same database and master key.
 * Whatever step it stopped before, a backup must be on the server, holding every key; and one that
 * opens with the login holds them all once the device has uploaded, or once the replacement is run
 * again where the backup key was already replaced in secret storage. Before, the old version was
 * deleted first: stopped after that, the account had no backup at all.
 */

const KEYS = 20;
const email = 'replace-crash@example.com';
const password = 'replace crash password';
const sortedIds = (keys: readonly RoomKey[]) => keys.map((k) => `${k.room_id} ${k.session_id}`).sort();

/**
 * Which request the server is stopped before, as it reaches the client's fetch, and whether the
 * replacement must be run again to finish (the new backup key is stored by then, the new version not).
 */
const STOPS = [
  [
    'the first write to secret storage',
    (method: string, path: string) => method === 'PUT' && path.startsWith('/v1/secret-storage/'),
    false,
  ],
  [
    'the new version is created',
    (method: string, path: string) => method === 'POST' && path === '/v1/backup/version',
    true,
  ],
  [
    'the old version is deleted',
    (method: string, path: string) => method === 'DELETE' && path.startsWith('/v1/backup/version/'),
    false,
  ],
] as const;

describe.each(STOPS)('a backup replacement stopped before %s', (_step, stopsAt, runAgain) => {
  let dir: string;
  let server: TestServer;
  let config: { databaseUrl: string; masterKeyFile: string };
  /** While armed, the first request `stopsAt` matches stops the server before it is sent. */
  let armed = false;
  let session: Session;
  let keystore: LocalKeystore;
  const keys = makeRoomKeys(KEYS);
  let oldVersion: string;

  const start = () => startTestServer(config);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-replace-crash-'));
    config = { databaseUrl: `sqlite:${join(dir, 'latchkey.db')}`, masterKeyFile: join(dir, 'master.key') };
    server = await start();
    // The SDK reaches whichever server is running now, as through a load balancer.
    const client = new LatchkeyClient({
      serverUrl: server.url,
      keyStretching: TEST_KEY_STRETCHING,
      fetch: async (input, init) => {
        const requested = new URL(input instanceof Request ? input.url : input);
        const method = init?.method ?? 'GET';
        if (armed && stopsAt(method, requested.pathname)) {
          armed = false;
          await server.close();
        }
        return fetch(new URL(`${requested.pathname}${requested.search}`, server.url), init);
      },
    });
    const before = server.smtp.messages.length;
    await client.signUp(email, password);
    await client.verifyEmail(email, await server.smtp.codeFor(email, { after: before }));
    session = await client.logIn(email, password);
    keystore = await session.openKeystore(join(dir, 'device.db'));
    await keystore.addRoomKeys(keys.map((key) => ({ key })));
    const backup = session.keyBackup(keystore);
    ({ version: oldVersion } = await backup.enable());
    expect((await backup.uploadPending()).uploaded).toBe(KEYS);
  });
  afterAll(async () => {
    await keystore?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves a backup on the server that opens with the login and holds every key, or will once uploaded', async () => {
    armed = true;
    const outcome = await session
      .keyBackup(keystore)
      .enable({ replace: true })
      .then(
        () => 'finished',
        (error: unknown) => `failed: ${(error as { code?: string }).code}`,
      );
    expect(armed, 'the sequence reached the step it is stopped before').toBe(false);
    // Whether or not the client saw the end, the server comes back on the same data.
    server = await start();
    const backup = session.keyBackup(keystore);
    const current = await backup.current();
    expect(current, `no backup on the server after the replacement ${outcome}`).toBeDefined();
    if (runAgain) {
      // The old version is there with every key, but its key in secret storage is the new one now.
      expect(current).toMatchObject({ version: oldVersion, count: KEYS });
      const again = await backup.enable({ replace: true });
      expect(again.replaced).toMatchObject({ version: oldVersion, carriedOver: 0 });
    }
    // Opens with the login (a logged-in device's way in), and then takes this device's keys if it lacks any.
    await backup.uploadPending();
    const restored = await backup.restore({ trustedDevice: true });
    expect(restored).toMatchObject({ total: KEYS, failed: 0, refused: 0 });
    const fresh = await server.client().logIn(email, password);
    const otherDevice = await fresh.openKeystore(join(dir, `other-${Date.now()}.db`));
    try {
      await fresh.keyBackup(otherDevice).restore({ trustedDevice: true });
      expect(sortedIds((await otherDevice.persistedRoomKeys()).map((stored) => stored.key))).toEqual(sortedIds(keys));
    } finally {
      await otherDevice.close();
      await fresh.logOut();
    }
    expect(current?.version === oldVersion || Number(current?.version) > Number(oldVersion)).toBe(true);
  });
});
