import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64Url, toBase64Url } from '@latchkey/core';
import { buildApp, connect, DEFAULTS, type ServerContext } from '@latchkey/server';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { sql } from 'kysely';
import { TEST_KEY_STRETCHING } from '../test/support/server.js';
import { type BenchRow, runPool } from './support/bench.js';

/**
 * Issue 10's target: appends per second through the transparency log over HTTP (batched: one
 * transaction and one signature per batch), against a bare Fastify route doing one INSERT of the same
 * bytes on the same SQLite database, in the same run with the same load: at least 50% of that ceiling.
 * Both answer only once their write is committed.
 */
const APPENDS = Number(process.env.LATCHKEY_BENCH_LOG_APPENDS ?? 20_000);
const CONCURRENCY = 256;
const TARGET_RATIO = 0.5;

async function throughput(url: string, path: string, entries: readonly Uint8Array[]): Promise<number> {
  const start = performance.now();
  await runPool(entries, CONCURRENCY, async (entry) => {
    const response = await fetch(new URL(path, url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entry: toBase64Url(entry) }),
    });
    if (response.status !== 200) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
  });
  return entries.length / ((performance.now() - start) / 1000);
}

/** The peer: one INSERT per request on its own connection to the same database file. */
async function bareInsertServer(databaseUrl: string): Promise<FastifyInstance> {
  const { db } = connect(databaseUrl);
  await sql`create table if not exists bench_inserts (id integer primary key, entry blob not null)`.execute(db);
  const app = Fastify({ logger: false });
  app.post('/insert', async (request) => {
    const { entry } = request.body as { entry: string };
    await sql`insert into bench_inserts (entry) values (${fromBase64Url(entry)})`.execute(db);
    return { ok: true };
  });
  app.addHook('onClose', () => db.destroy());
  return app;
}

export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-log-'));
  const databaseUrl = `sqlite:${join(dir, 'latchkey.db')}`;
  const appendRoute: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
    app.post('/append', async (request) =>
      ctx.transparencyLog.append(fromBase64Url((request.body as { entry: string }).entry)),
    );
  };
  const ours = await buildApp({
    config: {
      ...DEFAULTS,
      databaseUrl,
      masterKeyFile: join(dir, 'master.key'),
      keyStretching: TEST_KEY_STRETCHING,
      logLevel: 'silent',
    },
    logger: false,
    extraPlugins: [appendRoute],
  });
  const peer = await bareInsertServer(databaseUrl);
  try {
    const oursUrl = await ours.listen({ host: '127.0.0.1', port: 0 });
    const peerUrl = await peer.listen({ host: '127.0.0.1', port: 0 });
    const entries = Array.from({ length: APPENDS }, (_, n) => new TextEncoder().encode(`bench entry ${n} `.repeat(8)));
    // Warm both up, then measure the peer first and ours second on the same, now larger, file.
    await throughput(peerUrl, '/insert', entries.slice(0, 1000));
    await throughput(oursUrl, '/append', entries.slice(0, 1000));
    const peerRate = await throughput(peerUrl, '/insert', entries);
    const oursRate = await throughput(oursUrl, '/append', entries);
    const ratio = oursRate / peerRate;
    console.log(
      `log appends ${oursRate.toFixed(0)}/s, bare inserts ${peerRate.toFixed(0)}/s: ratio ${ratio.toFixed(2)} (target ≥ ${TARGET_RATIO})`,
    );
    return [
      {
        name: `log appends over HTTP (batched) vs a bare one-INSERT route, SQLite, ${CONCURRENCY} clients`,
        ours: oursRate,
        peer: peerRate,
        unit: 'appends/s',
        ratio,
        target: `>= ${TARGET_RATIO}`,
        pass: ratio >= TARGET_RATIO,
      },
    ];
  } finally {
    await peer.close();
    await ours.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
