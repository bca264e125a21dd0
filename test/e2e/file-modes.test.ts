import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Running, serveCommand, start } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';

/**
 * `latchkey serve` keeps its data owner-only, as it does the master key: the data directory it makes
 * is 0700, and the SQLite database with the -wal and -shm files SQLite makes beside it later are
 * 0600, whatever the umask; files an earlier version left readable by others are tightened at start.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

/** `latchkey serve` over `data` (not yet existing the first time), listening when it returns. */
async function serve(data: string): Promise<{ serve: Running; url: string }> {
  const port = await freePort();
  const { argv, env } = serveCommand(data, port, ['--log-level', 'warn']);
  const running = start(process.execPath, argv, env);
  const url = `http://127.0.0.1:${port}`;
  await running.waitFor(`Latchkey listening on ${url}`, 30_000);
  return { serve: running, url };
}

/** A write, so that SQLite has its -wal and -shm files open. */
async function write(url: string): Promise<void> {
  const response = await fetch(`${url}/v1/account/register/start`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'modes@example.com', registrationRequest: 'AAAA' }),
  });
  await response.arrayBuffer();
}

describe('latchkey serve: file modes of its data', () => {
  it('makes the data directory 0700 and the database, -wal and -shm 0600', async () => {
    const root = mkdtempSync(join(tmpdir(), 'latchkey-modes-'));
    dirs.push(root);
    const data = join(root, 'data');
    const { serve: running, url } = await serve(data);
    try {
      await write(url);
      const db = join(data, 'latchkey.db');
      expect(existsSync(`${db}-wal`) && existsSync(`${db}-shm`)).toBe(true);
      expect({
        data: modeOf(data),
        db: modeOf(db),
        wal: modeOf(`${db}-wal`),
        shm: modeOf(`${db}-shm`),
        masterKey: modeOf(join(data, 'master.key')),
      }).toEqual({ data: '700', db: '600', wal: '600', shm: '600', masterKey: '600' });
    } finally {
      running.child.kill('SIGKILL');
      await running.done;
    }
  });

  it('tightens a database, -wal and -shm that others could read to 0600 at start', async () => {
    const root = mkdtempSync(join(tmpdir(), 'latchkey-modes-'));
    dirs.push(root);
    const data = join(root, 'data');
    const db = join(data, 'latchkey.db');
    const first = await serve(data);
    await write(first.url);
    // Killed, not stopped: a clean close would remove the -wal and -shm files.
    first.serve.child.kill('SIGKILL');
    await first.serve.done;
    for (const path of [db, `${db}-wal`, `${db}-shm`]) chmodSync(path, 0o644);

    const second = await serve(data);
    try {
      await write(second.url);
      expect({ db: modeOf(db), wal: modeOf(`${db}-wal`), shm: modeOf(`${db}-shm`) }).toEqual({
        db: '600',
        wal: '600',
        shm: '600',
      });
    } finally {
      second.serve.child.kill('SIGKILL');
      await second.serve.done;
    }
  });
});
