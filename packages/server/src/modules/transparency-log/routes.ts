import {
  concatBytes,
  encodeEntryBundle,
  LatchkeyError,
  parseTilePath,
  TILE_WIDTH,
  type TileCoordinate,
} from '@latchkey/core';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { ServerContext } from '../../context.js';
import { route } from '../../route.js';
import type { LogStore } from '../../store/log-store.js';

/** Where the log is served as C2SP tlog-tiles: `/log/checkpoint`, `/log/tile/…`. */
export const LOG_PREFIX = '/log';

/**
 * The newest checkpoint changes with every batch: caches must ask again (c2sp.org/tlog-tiles: "a few
 * seconds at most"); `no-cache` lets them keep it and revalidate, never serve it stale.
 */
const CHECKPOINT_CACHE = 'no-cache';
/** Tiles and bundles never change once served, full or partial: a CDN may keep them forever. */
const TILE_CACHE = 'public, max-age=31536000, immutable';

function noSuchTile(path: string): LatchkeyError {
  return new LatchkeyError(
    'LK_LOG_TILE_NOT_FOUND',
    `The log has no ${path} yet: it lies beyond the newest checkpoint (partial tiles are served only up to its size).`,
  );
}

/**
 * The log over HTTP: its key for clients to pin, and the tlog-tiles layout for any client or standard
 * tool. Tiles are read from committed rows only, and every committed row is under a committed
 * checkpoint, so nothing served lies beyond a signed tree; a tile not yet complete to the width asked
 * for is 404, never padded or cut.
 */
export const transparencyLogRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const r = route(app, ctx);
  r.get('/v1/log/key', {
    tag: 'transparency log',
    summary: "The log's origin and note verifier key, and where its tiles are served",
    reply: Type.Object({ origin: Type.String(), verifierKey: Type.String(), prefix: Type.String() }),
    handler: async () => ({
      origin: ctx.transparencyLog.origin,
      verifierKey: ctx.transparencyLog.verifierKey,
      prefix: LOG_PREFIX,
    }),
  });
  registerTiles(app, ctx.store.log);
};

function registerTiles(app: FastifyInstance, log: LogStore): void {
  app.get(
    `${LOG_PREFIX}/checkpoint`,
    { schema: { tags: ['transparency log'], summary: 'The newest signed checkpoint (c2sp.org/tlog-checkpoint)' } },
    async (_request, reply) => {
      const latest = await log.latestCheckpoint();
      if (latest === undefined) throw new LatchkeyError('LK_UNAVAILABLE', 'The log has not started yet.');
      return reply.header('cache-control', CHECKPOINT_CACHE).type('text/plain; charset=utf-8').send(latest.note);
    },
  );
  app.get(
    `${LOG_PREFIX}/tile/*`,
    { schema: { tags: ['transparency log'], summary: 'A hash tile or entry bundle (c2sp.org/tlog-tiles)' } },
    async (request, reply) => {
      const path = `tile/${(request.params as { '*': string })['*']}`;
      const tile = parseTilePath(path);
      const bytes = tile.kind === 'entries' ? await entryBundle(log, tile) : await hashTile(log, tile);
      if (bytes === undefined) throw noSuchTile(path);
      return reply.header('cache-control', TILE_CACHE).type('application/octet-stream').send(Buffer.from(bytes));
    },
  );
}

/** A hash tile: a stored full one, or a partial one from the rows below it (leaf hashes, or full tiles' roots). */
async function hashTile(log: LogStore, tile: TileCoordinate): Promise<Uint8Array | undefined> {
  if (tile.width === TILE_WIDTH) return log.fullTile(tile.level, tile.index);
  const from = tile.index * TILE_WIDTH;
  const to = from + tile.width;
  const hashes = tile.level === 0 ? await log.leafHashes(from, to) : await log.tileRoots(tile.level - 1, from, to);
  return hashes.length === tile.width ? concatBytes(...hashes) : undefined;
}

async function entryBundle(log: LogStore, tile: TileCoordinate): Promise<Uint8Array | undefined> {
  const from = tile.index * TILE_WIDTH;
  const entries = await log.entries(from, from + tile.width);
  return entries.length === tile.width ? encodeEntryBundle(entries) : undefined;
}
