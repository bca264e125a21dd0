import { LatchkeyError } from '../errors.js';
import { requireTreeNumber, shiftRight } from './bits.js';
import { HASH_SIZE, type HashSource, leafHash, rootFromLeafHashes } from './merkle-tree.js';

/**
 * C2SP tlog-tiles v0.1.0: the log served as immutable files. A tile at level L holds up to 256 hashes
 * of subtrees of 256^L leaves (level 0: leaf hashes); tile N at level L covers leaves
 * [N * 256^(L+1), (N+1) * 256^(L+1)). A tile narrower than 256 is "partial" and only ever served
 * for the width some checkpoint needs. Entry bundles carry the entries of a level-0 tile.
 */

/** Hashes in a full tile; a tile spans 8 levels of the binary tree. */
export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;
/** The highest tile level the spec allows. */
export const MAX_TILE_LEVEL = 63;

/** A hash tile (`kind: 'hash'`) or an entry bundle (`kind: 'entries'`, whose level is 0). */
export interface TileCoordinate {
  readonly kind: 'hash' | 'entries';
  readonly level: number;
  readonly index: number;
  /** 1..256; 256 is a full tile (no `.p/<W>` in its path). */
  readonly width: number;
}

function malformed(why: string): LatchkeyError {
  return new LatchkeyError('LK_LOG_TILE_MALFORMED', `Not a well-formed tile: ${why}.`);
}

/** N as path elements of three digits, all but the last prefixed with "x": 1234067 → x001/x234/067. */
export function formatTileIndex(index: number): string {
  requireTreeNumber(index, 'the tile index');
  const groups: string[] = [];
  let rest = index;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((group, i) => (i < groups.length - 1 ? `x${group}` : group)).join('/');
}

/** The inverse of {@link formatTileIndex}; only the canonical spelling parses (no leading x000/). */
export function parseTileIndex(text: string): number | undefined {
  const groups = text.split('/');
  const last = groups.pop() as string;
  if (!/^[0-9]{3}$/.test(last) || groups.some((g) => !/^x[0-9]{3}$/.test(g)) || groups[0] === 'x000') return undefined;
  const index = Number([...groups.map((g) => g.slice(1)), last].join(''));
  return Number.isSafeInteger(index) ? index : undefined;
}

/** The path of a tile below the log's prefix: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`. */
export function tilePath(tile: TileCoordinate): string {
  requireTile(tile);
  const where = tile.kind === 'entries' ? 'entries' : String(tile.level);
  const partial = tile.width === TILE_WIDTH ? '' : `.p/${tile.width}`;
  return `tile/${where}/${formatTileIndex(tile.index)}${partial}`;
}

/** Parses a tile path (as {@link tilePath} writes it); throws `LK_LOG_TILE_MALFORMED`. */
export function parseTilePath(path: string): TileCoordinate {
  const match = /^tile\/(entries|0|[1-9][0-9]?)\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(path);
  if (match === null) throw malformed(`"${path}" is not tile/<L>/<N>[.p/<W>]`);
  const [, where, indexText, widthText] = match as unknown as [string, string, string, string | undefined];
  const index = parseTileIndex(indexText);
  const width = widthText === undefined ? TILE_WIDTH : Number(widthText);
  if (index === undefined) throw malformed(`"${indexText}" is not a canonical tile index`);
  if (widthText !== undefined && width >= TILE_WIDTH) throw malformed('a partial tile is 1 to 255 hashes wide');
  const tile: TileCoordinate =
    where === 'entries'
      ? { kind: 'entries', level: 0, index, width }
      : { kind: 'hash', level: Number(where), index, width };
  requireTile(tile);
  return tile;
}

function requireTile(tile: TileCoordinate): void {
  requireTreeNumber(tile.index, 'the tile index');
  if (!Number.isInteger(tile.level) || tile.level < 0 || tile.level > MAX_TILE_LEVEL) {
    throw malformed(`level ${tile.level} is not 0 to ${MAX_TILE_LEVEL}`);
  }
  if (tile.kind === 'entries' && tile.level !== 0) throw malformed('entry bundles are level 0');
  if (!Number.isInteger(tile.width) || tile.width < 1 || tile.width > TILE_WIDTH) {
    throw malformed(`width ${tile.width} is not 1 to ${TILE_WIDTH}`);
  }
}

/** The tiles of one level for a tree size: how many full ones, and the partial one's width (0: none). */
export interface TileLevel {
  readonly level: number;
  readonly fullTiles: number;
  readonly partialWidth: number;
}

/** Hashes at a tile level for a tree of `size` leaves: one per complete subtree of 256^level leaves. */
function hashesAtLevel(size: number, level: number): number {
  return shiftRight(size, TILE_HEIGHT * level);
}

/**
 * The tiles a tree of `size` leaves is served as, level by level (tlog-tiles): at level L there are
 * floor(size / 256^L) hashes, in full tiles of 256 and a partial tile of the rest. Empty levels end it.
 */
export function tileLevelsForSize(size: number): TileLevel[] {
  requireTreeNumber(size, 'the tree size');
  const levels: TileLevel[] = [];
  for (let level = 0; hashesAtLevel(size, level) > 0; level++) {
    const count = hashesAtLevel(size, level);
    levels.push({ level, fullTiles: Math.floor(count / TILE_WIDTH), partialWidth: count % TILE_WIDTH });
  }
  return levels;
}

/** The tile at `level` holding hash number `hashIndex` of that level, as wide as a tree of `size` has it. */
export function tileFor(size: number, level: number, hashIndex: number): TileCoordinate {
  const count = hashesAtLevel(size, level);
  if (hashIndex >= count) {
    throw new LatchkeyError(
      'LK_LOG_RANGE_INVALID',
      `A tree of ${size} has no hash ${hashIndex} at tile level ${level}.`,
    );
  }
  const index = Math.floor(hashIndex / TILE_WIDTH);
  const width = index < Math.floor(count / TILE_WIDTH) ? TILE_WIDTH : count % TILE_WIDTH;
  return { kind: 'hash', level, index, width };
}

/** Every tile (not entry bundles) a tree of `size` is served as, full and partial, level by level. */
export function tilesForSize(size: number): TileCoordinate[] {
  return tileLevelsForSize(size).flatMap(({ level, fullTiles, partialWidth }) => {
    const full = Array.from({ length: fullTiles }, (_, index) => ({
      kind: 'hash' as const,
      level,
      index,
      width: TILE_WIDTH,
    }));
    return partialWidth === 0
      ? full
      : [...full, { kind: 'hash' as const, level, index: fullTiles, width: partialWidth }];
  });
}

/** A tile's bytes from the tree: hash i is the root of the subtree of 256^level leaves numbered index*256+i. */
export function tileContent(source: HashSource, tile: TileCoordinate): Uint8Array {
  requireTile(tile);
  if (tile.kind !== 'hash') throw malformed('entry bundles hold entries, not hashes');
  const out = new Uint8Array(tile.width * HASH_SIZE);
  for (let i = 0; i < tile.width; i++) {
    out.set(source.nodeHash(TILE_HEIGHT * tile.level, tile.index * TILE_WIDTH + i), i * HASH_SIZE);
  }
  return out;
}

/** Splits a hash tile into its hashes; its length must be exactly 32 bytes per hash of its width. */
export function parseTileHashes(bytes: Uint8Array, width: number): Uint8Array[] {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH || bytes.length !== width * HASH_SIZE) {
    throw malformed(`a tile of width ${width} is ${width * HASH_SIZE} bytes, not ${bytes.length}`);
  }
  return Array.from({ length: width }, (_, i) => bytes.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE));
}

/** An entry bundle: each entry as a big-endian uint16 length and its bytes (so at most 65,535 bytes each). */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  if (entries.length === 0 || entries.length > TILE_WIDTH) throw malformed('a bundle holds 1 to 256 entries');
  const out = new Uint8Array(entries.reduce((n, e) => n + 2 + e.length, 0));
  let offset = 0;
  for (const entry of entries) {
    if (entry.length > 0xffff) throw malformed('an entry is longer than 65,535 bytes');
    out[offset] = entry.length >> 8;
    out[offset + 1] = entry.length & 0xff;
    out.set(entry, offset + 2);
    offset += 2 + entry.length;
  }
  return out;
}

/**
 * Reads an entry bundle back, checking every length against the bytes left, and that it holds exactly
 * `width` entries with nothing after them.
 */
export function parseEntryBundle(bytes: Uint8Array, width: number): Uint8Array[] {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw malformed(`width ${width} is not 1 to 256`);
  const entries: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (entries.length === width) throw malformed(`the bundle holds more than ${width} entries`);
    if (offset + 2 > bytes.length) throw malformed('the bundle ends inside an entry length');
    const length = ((bytes[offset] as number) << 8) | (bytes[offset + 1] as number);
    if (offset + 2 + length > bytes.length) throw malformed('the bundle ends inside an entry');
    entries.push(bytes.slice(offset + 2, offset + 2 + length));
    offset += 2 + length;
  }
  if (entries.length !== width) throw malformed(`the bundle holds ${entries.length} entries, not ${width}`);
  return entries;
}

/** Checks that a bundle's entries hash to the leaf hashes of the level-0 tile they belong to. */
export function verifyEntryBundle(entries: readonly Uint8Array[], levelZeroTile: readonly Uint8Array[]): void {
  const matches =
    entries.length === levelZeroTile.length &&
    entries.every((entry, i) => sameBytes(leafHash(entry), levelZeroTile[i] as Uint8Array));
  if (!matches) throw malformed('the entries do not hash to the leaf hashes of their tile');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * A hash source over tiles a client fetched for a tree of `size` leaves: any node of the binary tree is
 * rebuilt from the 2^(level mod 8) hashes below it in the tile level under it. `getTile` returns the
 * hashes of a tile it holds (and throws when it lacks one); see {@link tilesNeeded} to know which.
 */
export function tileHashSource(size: number, getTile: (tile: TileCoordinate) => readonly Uint8Array[]): HashSource {
  requireTreeNumber(size, 'the tree size');
  return {
    nodeHash(level: number, index: number): Uint8Array {
      const tileLevel = Math.floor(level / TILE_HEIGHT);
      const span = 2 ** (level % TILE_HEIGHT);
      const first = index * span;
      const hashes: Uint8Array[] = [];
      for (let i = first; i < first + span; i++) {
        const tile = tileFor(size, tileLevel, i);
        const hash = getTile(tile)[i % TILE_WIDTH];
        if (hash === undefined) throw malformed(`tile ${tilePath(tile)} lacks hash ${i % TILE_WIDTH}`);
        hashes.push(hash);
      }
      return rootFromLeafHashes(hashes);
    },
  };
}

/**
 * The tiles a computation over a tree of `size` reads (a root, an inclusion or consistency proof): it is
 * run once against placeholder hashes and the tiles it touched are listed, so a client fetches just
 * those (tlog-tiles: never a partial tile no checkpoint needs) and then runs it for real.
 */
export function tilesNeeded(size: number, compute: (source: HashSource) => unknown): TileCoordinate[] {
  const touched = new Map<string, TileCoordinate>();
  const placeholder = new Uint8Array(HASH_SIZE);
  compute(
    tileHashSource(size, (tile) => {
      touched.set(tilePath(tile), tile);
      return Array.from({ length: tile.width }, () => placeholder);
    }),
  );
  return [...touched.values()];
}
