import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inclusionProof, leafHash, rootFromHashSource, toBase64Url, verifyInclusionProof } from '@latchkey/core';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../support/postgres.js';
import { type ServerProcess, startServerProcess } from '../support/server-process.js';
import { type LogView, logRows, makeEntry, readLogOverHttp } from './transparency-log-support.js';

/**
 * Issue 10, "Scale" and "Must show": server processes that share one database share one log (exactly
 * one sequencer at a time, no index twice, none skipped), and a server killed with SIGKILL in the
 * middle of appending loses nothing it acknowledged: after a restart the rows, the tiles and the last
 * checkpoint agree. Each server is a real child process (transparency-log-server.ts adds a test-only
 * route that appends through the log and answers once the log acknowledged).
 */
const SCRIPT = fileURLToPath(new URL('./transparency-log-server.ts', import.meta.url));

async function appendOverHttp(url: string, entry: Uint8Array): Promise<number> {
  const response = await fetch(new URL('/test/log/append', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entry: toBase64Url(entry) }),
  });
  if (response.status !== 200) throw new Error(`append: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { index: number }).index;
}

/** What a client verifies of the whole log: the tiles give the signed root, every entry is included. */
function expectLogVerifies(view: LogView): void {
  const root = view.opened.checkpoint.rootHash;
  expect(Buffer.from(rootFromHashSource(view.size, view.source))).toEqual(Buffer.from(root));
  expect(view.entries.length).toBe(view.size);
  for (let index = 0; index < view.size; index++) {
    const proof = inclusionProof(view.source, index, view.size);
    verifyInclusionProof({
      index,
      size: view.size,
      leafHash: leafHash(view.entries[index] as Uint8Array),
      proof,
      root,
    });
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('two server processes on one PostgreSQL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-tlog-nodes-'));
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('append concurrently into one log: indexes 0..N-1 exactly once, no gap, in the database too', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'), 'tlog_nodes');
    const config = { databaseUrl, masterKeyFile: join(dir, 'master.key') };
    // One after the other, as oauth-nodes.test.ts starts its nodes: the second finds the log's key and
    // first checkpoint made, and carries on the same log.
    servers.push(await startServerProcess({ script: SCRIPT, config }));
    servers.push(await startServerProcess({ script: SCRIPT, config }));
    const [a, b] = servers as [ServerProcess, ServerProcess];

    const total = 600;
    const entries = range(total).map((n) => makeEntry(n, 'two-nodes'));
    // Waves, so that both nodes' batches interleave many times rather than once.
    const indexes: number[] = [];
    for (let wave = 0; wave < 6; wave++) {
      const slice = range(100).map((i) => wave * 100 + i);
      indexes.push(
        ...(await Promise.all(slice.map((n) => appendOverHttp(n % 2 === 0 ? a.url : b.url, entries[n] as Uint8Array)))),
      );
    }
    expect([...indexes].sort((x, y) => x - y)).toEqual(range(total));

    const rows = await logRows(databaseUrl);
    expect(rows.leaves).toEqual(range(total));
    expect(rows.checkpoints.at(-1)).toBe(total);
    // Both nodes wrote batches (or the test would show nothing about two sequencers).
    expect(rows.checkpoints.length).toBeGreaterThan(6);

    const [fromA, fromB] = await Promise.all([readLogOverHttp(a.url), readLogOverHttp(b.url)]);
    expect(fromA.opened.text).toBe(fromB.opened.text);
    expectLogVerifies(fromA);
    for (const [n, index] of indexes.entries()) {
      expect(Buffer.from(fromA.entries[index] as Uint8Array)).toEqual(Buffer.from(entries[n] as Uint8Array));
    }
  });
});

describe.each(['sqlite', 'postgres'] as const)('a server killed mid-batch (%s)', (backend) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-tlog-crash-'));
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged append, and its tree, tiles and last checkpoint agree after a restart', async () => {
    const databaseUrl =
      backend === 'sqlite'
        ? `sqlite:${join(dir, 'latchkey.db')}`
        : await createTestDatabase(inject('postgresUrl'), 'tlog_crash');
    const config = { databaseUrl, masterKeyFile: join(dir, 'master.key') };
    server = await startServerProcess({ script: SCRIPT, config });
    const url = server.url;

    // Appends keep coming from 64 clients; once 300 are acknowledged the server is told to SIGKILL
    // itself inside its next batch's transaction, its rows written and not committed.
    const acknowledged = new Map<number, Uint8Array>();
    let inFlight = 0;
    let inFlightAtKill = -1;
    let next = 0;
    let exited = false;
    const dying = (async () => {
      while (acknowledged.size < 300) await new Promise((resolve) => setTimeout(resolve, 2));
      await (server as ServerProcess).ask({ type: 'die-mid-batch' }, 'armed');
      inFlightAtKill = inFlight;
      const status = await (server as ServerProcess).exited;
      exited = true;
      return status;
    })();
    const client = async () => {
      while (!exited) {
        const entry = makeEntry(next++, 'crash');
        inFlight++;
        try {
          acknowledged.set(await appendOverHttp(url, entry), entry);
        } catch {
          // The server died under this request: it was never acknowledged.
        } finally {
          inFlight--;
        }
      }
    };
    await Promise.all([...range(64).map(client), dying]);
    expect((await dying).signal).toBe('SIGKILL');
    // The kill came with appends on their way in: the batch being written then was cut off.
    expect(inFlightAtKill).toBeGreaterThan(0);

    server = await startServerProcess({ script: SCRIPT, config });
    const view = await readLogOverHttp(server.url);
    expectLogVerifies(view);
    // Every acknowledged append is in the log, at the index it was acknowledged with.
    expect(view.size).toBeGreaterThan(Math.max(...acknowledged.keys()));
    for (const [index, entry] of acknowledged) {
      expect(Buffer.from(view.entries[index] as Uint8Array), `entry ${index}`).toEqual(Buffer.from(entry));
    }
    const rows = await logRows(databaseUrl);
    expect(rows.leaves).toEqual(range(view.size));
    expect(rows.checkpoints.at(-1)).toBe(view.size);

    // The restarted sequencer carries on the same tree from the stored hashes.
    const more = await Promise.all(range(20).map((n) => appendOverHttp(server?.url as string, makeEntry(n, 'after'))));
    expect([...more].sort((x, y) => x - y)).toEqual(range(20).map((i) => view.size + i));
    expectLogVerifies(await readLogOverHttp(server.url));
  });
});
