import {
  consistencyProof,
  inclusionProof,
  leafHash,
  rootFromHashSource,
  TILE_WIDTH,
  verifyConsistencyProof,
  verifyInclusionProof,
} from '@latchkey/core';
import { buildApp, loadConfig, type ServerContext } from '@latchkey/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, databaseOn } from '../support/backends.js';
import { asyncLatchkeyErrorOf, codeOf, latchkeyErrorOf } from '../support/errors.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { fetchTile, logRows, makeEntry, readLogOverHttp } from './transparency-log-support.js';

/**
 * Issue 10, "One log for the whole server": appends go in as batches, each one transaction with its
 * signed checkpoint; a client reading only HTTP (the key, the checkpoint, the tiles) gets the
 * checkpoint's root and an inclusion proof for every entry. The server runs in-process and the test
 * appends through the context's log, as the registry module will.
 */
describe.each(BACKENDS)('the transparency log (%s)', (backend) => {
  let server: TestServer;
  let ctx: ServerContext;
  /** Every entry appended by this suite, by its acknowledged index. */
  const appended = new Map<number, Uint8Array>();

  beforeAll(async () => {
    server = await startTestServer(await databaseOn(backend, 'tlog'), {
      extraPlugins: [
        async (_app, options) => {
          ctx = (options as { ctx: ServerContext }).ctx;
        },
      ],
    });
  });
  afterAll(() => server?.close());

  async function appendAll(entries: readonly Uint8Array[]): Promise<number[]> {
    const results = await Promise.all(entries.map((entry) => ctx.transparencyLog.append(entry)));
    for (const [i, { index }] of results.entries()) appended.set(index, entries[i] as Uint8Array);
    return results.map((r) => r.index);
  }

  it('starts with a signed checkpoint of the empty tree', async () => {
    const view = await readLogOverHttp(server.url);
    expect(view.size).toBe(0);
    expect(Buffer.from(view.opened.checkpoint.rootHash).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(view.opened.checkpoint.origin).toBe(ctx.transparencyLog.origin);
  });

  it('sequences a burst as one batch: one transaction, one checkpoint, indexes 0..N-1 once each', async () => {
    const before = await logRows(server.config.databaseUrl);
    const indexes = await appendAll(Array.from({ length: 700 }, (_, n) => makeEntry(n, 'burst')));
    expect([...indexes].sort((a, b) => a - b)).toEqual(Array.from({ length: 700 }, (_, i) => i));
    const after = await logRows(server.config.databaseUrl);
    expect(after.checkpoints).toEqual([...before.checkpoints, 700]);
    expect(after.leaves).toEqual(Array.from({ length: 700 }, (_, i) => i));
    // 700 leaves: two full level-0 tiles stored, the rest served from the rows as partial tiles.
    expect(after.tiles).toBe(2);
  });

  it('serves tiles whose root is the checkpoint and an inclusion proof for every entry', async () => {
    // A few more batches, so the tree has grown across partial tiles more than once.
    for (const count of [1, 255, 40]) {
      await appendAll(Array.from({ length: count }, (_, n) => makeEntry(n, `wave-${count}`)));
    }
    const view = await readLogOverHttp(server.url);
    expect(view.size).toBe(appended.size);
    const root = view.opened.checkpoint.rootHash;
    expect(Buffer.from(rootFromHashSource(view.size, view.source))).toEqual(Buffer.from(root));
    for (let index = 0; index < view.size; index++) {
      const entry = appended.get(index) as Uint8Array;
      expect(Buffer.from(view.entries[index] as Uint8Array)).toEqual(Buffer.from(entry));
      const proof = inclusionProof(view.source, index, view.size);
      verifyInclusionProof({ index, size: view.size, leafHash: leafHash(entry), proof, root });
    }
  });

  it('grows only: the tiles prove each earlier checkpoint consistent with the newest', async () => {
    const earlier = await readLogOverHttp(server.url);
    await appendAll(Array.from({ length: 300 }, (_, n) => makeEntry(n, 'grow')));
    const later = await readLogOverHttp(server.url);
    const proof = consistencyProof(later.source, earlier.size, later.size);
    verifyConsistencyProof({
      size1: earlier.size,
      size2: later.size,
      root1: earlier.opened.checkpoint.rootHash,
      root2: later.opened.checkpoint.rootHash,
      proof,
    });
  });

  it('sets cache headers: the checkpoint is revalidated, tiles and bundles are immutable', async () => {
    const checkpoint = await fetch(new URL('/log/checkpoint', server.url));
    expect(checkpoint.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(checkpoint.headers.get('cache-control')).toBe('no-cache');
    for (const path of ['tile/0/000', 'tile/0/001.p/5', 'tile/1/000.p/2', 'tile/entries/000', 'tile/entries/001.p/7']) {
      const response = await fetch(new URL(`/log/${path}`, server.url));
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type'), path).toBe('application/octet-stream');
      expect(response.headers.get('cache-control'), path).toBe('public, max-age=31536000, immutable');
    }
  });

  it('answers a tile beyond the checkpoint with 404 LK_LOG_TILE_NOT_FOUND, never an empty or short tile', async () => {
    const { size } = await readLogOverHttp(server.url);
    const fullTiles = Math.floor(size / TILE_WIDTH);
    const partialWidth = size % TILE_WIDTH;
    const beyond = [
      // The partial level-0 tile is not yet full, nor wider than the checkpoint.
      `tile/0/${String(fullTiles).padStart(3, '0')}`,
      `tile/0/${String(fullTiles).padStart(3, '0')}.p/${partialWidth + 1}`,
      `tile/entries/${String(fullTiles).padStart(3, '0')}`,
      `tile/entries/${String(fullTiles + 1).padStart(3, '0')}.p/1`,
      'tile/1/001.p/1',
      'tile/2/000.p/1',
      'tile/1/000',
    ];
    for (const path of beyond) {
      const response = await fetch(new URL(`/log/${path}`, server.url));
      expect(response.status, path).toBe(404);
      expect(response.headers.get('cache-control'), path).toBe('no-store');
      expect(((await response.json()) as { code: string }).code, path).toBe('LK_LOG_TILE_NOT_FOUND');
    }
    // The partial tile exactly as wide as the checkpoint is there, with the hashes of the full tile's prefix.
    const partial = await fetchTile(server.url, { kind: 'hash', level: 0, index: fullTiles, width: partialWidth });
    expect(partial.length).toBe(partialWidth * 32);
  });

  it('answers a malformed tile path with 400 LK_LOG_TILE_MALFORMED', async () => {
    const malformed = [
      'tile/0/0',
      'tile/0/x000/001',
      'tile/0/000.p/0',
      'tile/0/000.p/256',
      'tile/0/000.p/007',
      'tile/64/000',
      'tile/01/000',
      'tile/-1/000',
      'tile/entries/000.p/',
      'tile/0/000/',
      'tile/0/1000',
      'tile/0/x1000/000',
      'tile/0/x009/x007/x199/x254/x740/x991/000',
      'tile/a/000',
      'tile/0/000.p/5/extra',
    ];
    for (const path of malformed) {
      const response = await fetch(new URL(`/log/${path}`, server.url));
      expect(response.status, path).toBe(400);
      expect(((await response.json()) as { code: string }).code, path).toBe('LK_LOG_TILE_MALFORMED');
    }
  });

  it('refuses an entry longer than an entry bundle can hold, LK_LOG_ENTRY_TOO_LARGE, and keeps nothing of it', async () => {
    const before = await logRows(server.config.databaseUrl);
    expect(await codeOf(ctx.transparencyLog.append(new Uint8Array(65_536)))).toBe('LK_LOG_ENTRY_TOO_LARGE');
    const [index] = await appendAll([new Uint8Array(65_535).fill(7)]);
    expect(index).toBe(before.leaves.length);
    const view = await readLogOverHttp(server.url);
    expect(view.size).toBe(before.leaves.length + 1);
    expect(Buffer.from(view.entries[index as number] as Uint8Array)).toEqual(
      Buffer.from(new Uint8Array(65_535).fill(7)),
    );
  });

  it('serves its key and origin at /v1/log/key, the origin being where the log is served', async () => {
    const response = await fetch(new URL('/v1/log/key', server.url));
    const body = (await response.json()) as { origin: string; verifierKey: string; prefix: string };
    expect(body.prefix).toBe('/log');
    expect(body.verifierKey.startsWith(`${body.origin}+`)).toBe(true);
    expect(body.origin).toMatch(/\/log$/);
    expect(body.origin).not.toMatch(/^https?:/);
  });
});

describe('the log origin', () => {
  it('is fixed for the log: a restart on the same database under another origin is refused, LK_CONFIG_INVALID', async () => {
    const first = await startTestServer();
    try {
      const { origin } = (await (await fetch(new URL('/v1/log/key', first.url))).json()) as { origin: string };
      const again = { ...first.config, logOrigin: 'elsewhere.example/log' };
      const error = await asyncLatchkeyErrorOf(buildApp({ config: again, logger: false }));
      expect(error.code).toBe('LK_CONFIG_INVALID');
      expect(error.details).toEqual({ setting: 'LATCHKEY_LOG_ORIGIN' });
      // Under its own origin, named explicitly, the same log opens.
      const same = await buildApp({ config: { ...first.config, logOrigin: origin }, logger: false });
      await same.close();
    } finally {
      await first.close();
    }
  });

  it('is kept when none is configured: the server moved to another port or public URL serves the same log', async () => {
    const first = await startTestServer();
    try {
      const { origin } = (await (await fetch(new URL('/v1/log/key', first.url))).json()) as { origin: string };
      const moved = { ...first.config, publicUrl: 'https://keys.example.org', logOrigin: undefined };
      const again = await buildApp({ config: moved, logger: false });
      try {
        const key = (await (await again.inject({ url: '/v1/log/key' })).json()) as { origin: string };
        expect(key.origin).toBe(origin);
        expect(key.origin).not.toBe('keys.example.org/log');
      } finally {
        await again.close();
      }
    } finally {
      await first.close();
    }
  });

  it('is read from LATCHKEY_LOG_ORIGIN: a note key name, without a scheme', () => {
    expect(loadConfig({ LATCHKEY_LOG_ORIGIN: 'keys.example.org/log' }).logOrigin).toBe('keys.example.org/log');
    for (const bad of ['https://keys.example.org/log', 'two words', 'a+b']) {
      expect(latchkeyErrorOf(() => loadConfig({ LATCHKEY_LOG_ORIGIN: bad })).code, bad).toBe('LK_CONFIG_INVALID');
    }
  });
});
