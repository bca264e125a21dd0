import {
  type HashSource,
  type OpenedCheckpoint,
  openCheckpoint,
  parseEntryBundle,
  parseTileHashes,
  parseVerifierKey,
  TILE_WIDTH,
  type TileCoordinate,
  tileHashSource,
  tilePath,
  tilesForSize,
  verifyEntryBundle,
} from '@latchkey/core';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';

/**
 * What a client of the log sees over HTTP, checked as it would check it: the key from /v1/log/key, the
 * newest checkpoint opened with it, every tile its size is served as, and every entry bundle checked
 * against its level-0 tile. Nothing here trusts the server's database.
 */
export interface LogView {
  opened: OpenedCheckpoint;
  size: number;
  source: HashSource;
  entries: Uint8Array[];
}

export async function readLogOverHttp(url: string): Promise<LogView> {
  const key = (await (await fetch(new URL('/v1/log/key', url))).json()) as { origin: string; verifierKey: string };
  const note = await (await fetch(new URL('/log/checkpoint', url))).text();
  const opened = openCheckpoint(note, { origin: key.origin, verifiers: [parseVerifierKey(key.verifierKey)] });
  const { size } = opened.checkpoint;
  const tiles = new Map<string, Uint8Array[]>();
  for (const tile of tilesForSize(size)) {
    tiles.set(tilePath(tile), parseTileHashes(await fetchTile(url, tile), tile.width));
  }
  const entries: Uint8Array[] = [];
  for (const tile of tilesForSize(size).filter((t) => t.level === 0)) {
    const bundle = parseEntryBundle(await fetchTile(url, { ...tile, kind: 'entries' }), tile.width);
    verifyEntryBundle(bundle, tiles.get(tilePath(tile)) as Uint8Array[]);
    entries.push(...bundle);
  }
  const fromTiles = tileHashSource(size, (tile) => {
    const hashes = tiles.get(tilePath(tile));
    if (hashes === undefined) throw new Error(`tile ${tilePath(tile)} was not fetched`);
    return hashes;
  });
  // Each node is rebuilt from up to 128 tile hashes; a proof for every entry asks for the same ones often.
  const known = new Map<string, Uint8Array>();
  const source = {
    nodeHash(level: number, index: number): Uint8Array {
      const key = `${level}/${index}`;
      let hash = known.get(key);
      if (hash === undefined) {
        hash = fromTiles.nodeHash(level, index);
        known.set(key, hash);
      }
      return hash;
    },
  };
  return { opened, size, source, entries };
}

export async function fetchTile(url: string, tile: TileCoordinate): Promise<Uint8Array> {
  const response = await fetch(new URL(`/log/${tilePath(tile)}`, url));
  if (response.status !== 200) throw new Error(`${tilePath(tile)}: ${response.status} ${await response.text()}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The log's rows as the database holds them: leaf indexes and checkpoint sizes, in order. */
export async function logRows(
  databaseUrl: string,
): Promise<{ leaves: number[]; checkpoints: number[]; tiles: number }> {
  const queries = {
    leaves: 'select idx from log_leaves order by idx',
    checkpoints: 'select size from log_checkpoints order by size',
    tiles: 'select count(*) as n from log_tiles',
  };
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new SqliteDatabase(databaseUrl.slice('sqlite:'.length), { readonly: true, fileMustExist: true });
    try {
      return {
        leaves: (db.prepare(queries.leaves).all() as { idx: number }[]).map((r) => Number(r.idx)),
        checkpoints: (db.prepare(queries.checkpoints).all() as { size: number }[]).map((r) => Number(r.size)),
        tiles: Number((db.prepare(queries.tiles).get() as { n: number }).n),
      };
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return {
      leaves: (await client.query<{ idx: string }>(queries.leaves)).rows.map((r) => Number(r.idx)),
      checkpoints: (await client.query<{ size: string }>(queries.checkpoints)).rows.map((r) => Number(r.size)),
      tiles: Number((await client.query<{ n: string }>(queries.tiles)).rows[0]?.n),
    };
  } finally {
    await client.end();
  }
}

/** Distinct entries: the index in four bytes, then a tag. */
export function makeEntry(n: number, tag: string): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from(Uint32Array.of(n).buffer), Buffer.from(tag)]));
}

export { TILE_WIDTH };
