import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BackupProgress, LatchkeyClient, type LocalKeystore, type RoomKey } from '@latchkey/client';
import { fromBase64, MAX_BACKUP_BATCH } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { codeOf } from '../support/errors.js';
import { createTestDatabase } from '../support/postgres.js';
import { makeRoomKeys } from '../support/room-keys.js';
import { TEST_KEY_STRETCHING } from '../support/server.js';
import { type ExitStatus, type ServerProcess, startServerProcess } from '../support/server-process.js';

/**
 * Issue 3: a server killed (SIGKILL: no handler, no graceful close) in the middle of an upload loses
 * no key it had acknowledged, and running the upload again completes the backup. The server is a real
 * child process on a real database; it is restarted on the same database and master key.
 *
 * The SDK talks to whichever server process is current through its `fetch` option (as a client would
 * through a load balancer), so the same session and keystore carry on across the restart.
 */

const TOTAL = 5_000;
const email = 'crash@example.com';
const password = 'crash test password';

const idOf = (key: Pick<RoomKey, 'room_id' | 'session_id'>) => `${key.room_id}\u0000${key.session_id}`;

/** Every key of a keystore as JSON with the session key's bytes in hex, sorted: equal means byte-equal. */
async function contents(keystore: LocalKeystore): Promise<string[]> {
  return (await keystore.persistedRoomKeys()).map(({ key }) => describeKey(key)).sort();
}

function describeKey(key: RoomKey): string {
  return JSON.stringify([idOf(key), Buffer.from(fromBase64(key.session_key)).toString('hex'), key]);
}

const databaseUrlFor = {
  sqlite: (dir: string) => Promise.resolve(`sqlite:${join(dir, 'latchkey.db')}`),
  postgres: () => createTestDatabase(inject('postgresUrl'), 'backup_crash'),
} as const;

describe.each(['sqlite', 'postgres'] as const)('a server killed mid-upload (%s)', (backend) => {
  const keys = makeRoomKeys(TOTAL);
  let dir: string;
  let config: { databaseUrl: string; masterKeyFile: string };
  let server: ServerProcess | undefined;
  let keystore: LocalKeystore | undefined;

  /**
   * The crash, in two stages, each made once by whichever test first needs it, so that any test runs
   * alone as well as in the file: device A's upload with the server SIGKILLed after the first
   * acknowledged batch (what was seen is kept for the first test to check), then the server restarted
   * on the same database and master key.
   */
  let killedStage: ReturnType<typeof killMidUpload> | undefined;
  let restartedStage: Promise<Awaited<ReturnType<typeof killMidUpload>>> | undefined;
  const killed = () => {
    killedStage ??= killMidUpload();
    return killedStage;
  };
  const restarted = () => {
    restartedStage ??= killed().then(async (stage) => {
      server = await startServerProcess({ config });
      return stage;
    });
    return restartedStage;
  };

  async function killMidUpload() {
    server = await startServerProcess({ config });
    const client = new LatchkeyClient({
      serverUrl: server.url,
      keyStretching: TEST_KEY_STRETCHING,
      fetch: (input, init) => {
        const requested = new URL(input instanceof Request ? input.url : input);
        return fetch(new URL(`${requested.pathname}${requested.search}`, (server as ServerProcess).url), init);
      },
    });
    await client.signUp(email, password);
    await client.verifyEmail(email, await server.codeFor(email));
    const session = await client.logIn(email, password, { deviceName: 'device A' });
    const store = await session.openKeystore(join(dir, 'device-a.db'));
    keystore = store;
    const stored = await store.addRoomKeys(keys.map((key) => ({ key })));
    const backup = session.keyBackup(store);
    const { recoveryKey, version } = await backup.enable();

    const progress: BackupProgress[] = [];
    let exit: Promise<ExitStatus> | undefined;
    const dying = server;
    const upload = backup.uploadPending((report) => {
      progress.push(report);
      // Called first with done 0 (the total, before anything is sent), then once a batch is acknowledged
      // and marked: kill after the first acknowledged batch, before the next leaves the client.
      if (exit === undefined && report.done > 0 && report.done < report.total) exit = dying.kill('SIGKILL');
    });
    const uploadError = await codeOf(upload);
    const exitStatus = await exit;
    const persisted = await store.persistedRoomKeys();
    const pending = await store.pendingBackup(version);
    /** The keys the client had marked backed up when the server died. */
    const markedBeforeKill = persisted.filter((s) => s.backedUpIn === version).map((s) => s.key);
    return {
      client,
      backup,
      keystore: store,
      recoveryKey,
      version,
      seen: { stored, uploadError, exitStatus, progress, persisted, pending, markedBeforeKill },
    };
  }

  /** A fresh device of the same account: logs in, restores with the recovery key, returns its keys. */
  async function restoreOnNewDevice(name: string) {
    const { client, recoveryKey } = await restarted();
    const device = await client.logIn(email, password, { deviceName: name });
    const store = await device.openKeystore(join(dir, `${name}.db`));
    try {
      const result = await device.keyBackup(store).restore({ recoveryKey });
      return { result, contents: await contents(store) };
    } finally {
      await store.close();
      await device.logOut();
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `latchkey-crash-${backend}-`));
    config = { databaseUrl: await databaseUrlFor[backend](dir), masterKeyFile: join(dir, 'master.key') };
  });

  afterAll(async () => {
    await keystore?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('SIGKILL after the first acknowledged batch: uploadPending rejects with LK_NETWORK', async () => {
    expect(TOTAL).toBeGreaterThan(MAX_BACKUP_BATCH); // more than one batch, or there is no "middle"
    const { seen } = await killed();
    expect(seen.stored).toBe(TOTAL);
    expect(seen.uploadError).toBe('LK_NETWORK');
    expect(seen.exitStatus).toEqual({ code: null, signal: 'SIGKILL' });
    expect(seen.progress.map(({ phase, done, total }) => ({ phase, done, total }))).toEqual([
      { phase: 'upload', done: 0, total: TOTAL },
      { phase: 'upload', done: MAX_BACKUP_BATCH, total: TOTAL },
    ]);

    expect(seen.persisted).toHaveLength(TOTAL);
    expect(seen.markedBeforeKill).toHaveLength(MAX_BACKUP_BATCH);
    expect(seen.markedBeforeKill.length).toBeLessThan(TOTAL);
    expect(seen.pending).toHaveLength(TOTAL - seen.markedBeforeKill.length);
    const pendingIds = new Set(seen.pending.map((stored) => idOf(stored.key)));
    expect(seen.markedBeforeKill.some((key) => pendingIds.has(idOf(key)))).toBe(false);
  });

  it('restarted on the same database, the server holds every key the client marked, byte for byte', async () => {
    const { backup, version, seen } = await restarted();
    // The session outlived the crash: its token is in the database, not in the dead process.
    expect(await backup.status()).toEqual({
      enabled: true,
      version,
      count: MAX_BACKUP_BATCH,
      etag: expect.any(String),
      pending: TOTAL - MAX_BACKUP_BATCH,
      trusted: true,
    });

    const restored = await restoreOnNewDevice('device-b');
    // The kill landed before the second batch was sent, so the server has exactly the acknowledged one.
    expect(restored.result).toEqual({
      version,
      total: MAX_BACKUP_BATCH,
      imported: MAX_BACKUP_BATCH,
      failed: 0,
      refused: 0,
      refusals: {},
    });
    expect(restored.contents).toEqual(seen.markedBeforeKill.map(describeKey).sort());
  });

  it('a rerun uploads only what was left; the backup then holds exactly all 5,000 keys', async () => {
    const { backup, keystore: store, version } = await restarted();
    const progress: BackupProgress[] = [];
    expect(await backup.uploadPending((report) => progress.push(report))).toEqual({
      uploaded: TOTAL - MAX_BACKUP_BATCH,
      version,
    });
    expect(progress.at(-1)).toMatchObject({ phase: 'upload', done: TOTAL - MAX_BACKUP_BATCH });
    expect(await store.pendingBackup(version)).toEqual([]);
    expect(await backup.status()).toMatchObject({ enabled: true, version, count: TOTAL, pending: 0 });
    expect(await backup.uploadPending()).toEqual({ uploaded: 0, version });

    const restored = await restoreOnNewDevice('device-c');
    expect(restored.result).toEqual({ version, total: TOTAL, imported: TOTAL, failed: 0, refused: 0, refusals: {} });
    expect(restored.contents).toEqual(keys.map(describeKey).sort());
    expect(restored.contents).toEqual(await contents(store));
  });
});

/**
 * The moments a kill between batches cannot reach: with a batch's request arrived but not yet written,
 * and with it committed but not yet acknowledged. The server kills itself there (test/support/
 * server-process-dies.ts). Either way the client marks nothing of that batch, and a rerun completes
 * the backup with every key exactly once.
 */
describe.each([
  ['sqlite', 'before-write'],
  ['sqlite', 'after-commit'],
  ['postgres', 'after-commit'],
] as const)('a server killed inside an upload request (%s, %s)', (backend, at) => {
  const keys = makeRoomKeys(3 * MAX_BACKUP_BATCH);
  const diesScript = fileURLToPath(new URL('../support/server-process-dies.ts', import.meta.url));
  let dir: string;
  let config: { databaseUrl: string; masterKeyFile: string };
  let server: ServerProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `latchkey-crash-inside-${backend}-`));
    config = { databaseUrl: await databaseUrlFor[backend](dir), masterKeyFile: join(dir, 'master.key') };
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses no acknowledged key, keeps no half batch, and a rerun completes the backup', async () => {
    server = await startServerProcess({ config, script: diesScript });
    const client = new LatchkeyClient({
      serverUrl: server.url,
      keyStretching: TEST_KEY_STRETCHING,
      fetch: (input, init) => {
        const requested = new URL(input instanceof Request ? input.url : input);
        return fetch(new URL(`${requested.pathname}${requested.search}`, server.url), init);
      },
    });
    const inside = `inside-${at}@example.com`;
    await client.signUp(inside, password);
    await client.verifyEmail(inside, await server.codeFor(inside));
    const session = await client.logIn(inside, password);
    const keystore = await session.openKeystore(join(dir, 'device.db'));
    await keystore.addRoomKeys(keys.map((key) => ({ key })));
    const backup = session.keyBackup(keystore);
    const { version, recoveryKey } = await backup.enable();

    await server.ask({ type: 'die-on-upload', nth: 2, at }, 'armed');
    expect(await codeOf(backup.uploadPending())).toBe('LK_NETWORK');
    expect(await server.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The first batch was acknowledged and marked; the second was not acknowledged, so not marked.
    const marked = (await keystore.persistedRoomKeys()).filter((stored) => stored.backedUpIn === version);
    expect(marked).toHaveLength(MAX_BACKUP_BATCH);

    server = await startServerProcess({ config });
    // Killed before writing, the server holds the acknowledged batch; killed after committing, the
    // unacknowledged one too: whole, never a part of it.
    const onServer = (await backup.current())?.count;
    expect(onServer).toBe(at === 'before-write' ? MAX_BACKUP_BATCH : 2 * MAX_BACKUP_BATCH);
    const device = await client.logIn(inside, password);
    const before = await device.openKeystore(join(dir, 'restored-before.db'));
    const partial = await device.keyBackup(before).restore({ recoveryKey });
    expect(partial).toMatchObject({ total: onServer, imported: onServer, failed: 0 });
    const held = new Set(await contents(before));
    expect(marked.every(({ key }) => held.has(describeKey(key)))).toBe(true);
    await before.close();

    // The rerun sends what was not acknowledged (the committed batch again, harmlessly).
    expect(await backup.uploadPending()).toEqual({ uploaded: 2 * MAX_BACKUP_BATCH, version });
    expect((await backup.current())?.count).toBe(keys.length);
    const after = await device.openKeystore(join(dir, 'restored-after.db'));
    expect(await device.keyBackup(after).restore({ recoveryKey })).toMatchObject({
      total: keys.length,
      failed: 0,
    });
    expect(await contents(after)).toEqual(keys.map(describeKey).sort());
    await after.close();
    await keystore.close();
  });
});
