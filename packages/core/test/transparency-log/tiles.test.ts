import {
  consistencyProof,
  encodeEntryBundle,
  formatTileIndex,
  inclusionProof,
  leafHash,
  MemoryTree,
  parseEntryBundle,
  parseTileHashes,
  parseTileIndex,
  parseTilePath,
  rootFromHashSource,
  rootFromLeafHashes,
  TILE_WIDTH,
  type TileCoordinate,
  tileContent,
  tileHashSource,
  tileLevelsForSize,
  tilePath,
  tilesForSize,
  tilesNeeded,
  verifyEntryBundle,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from '../vector-files.js';
import { mth, sampleEntries } from './rfc6962-reference.js';

describe('tile paths (tlog-tiles)', () => {
  it.each([
    [0, '000'],
    [5, '005'],
    [999, '999'],
    [1000, 'x001/000'],
    [1234067, 'x001/x234/067'],
    [Number.MAX_SAFE_INTEGER, 'x009/x007/x199/x254/x740/991'],
  ])('index %i is %s', (index, text) => {
    expect(formatTileIndex(index)).toBe(text);
    expect(parseTileIndex(text)).toBe(index);
  });

  it('paths of full and partial tiles and entry bundles', () => {
    expect(tilePath({ kind: 'hash', level: 0, index: 1234067, width: 256 })).toBe('tile/0/x001/x234/067');
    expect(tilePath({ kind: 'hash', level: 2, index: 0, width: 1 })).toBe('tile/2/000.p/1');
    expect(tilePath({ kind: 'entries', level: 0, index: 273, width: 112 })).toBe('tile/entries/273.p/112');
    for (const path of ['tile/0/x001/x234/067', 'tile/2/000.p/1', 'tile/entries/273.p/112', 'tile/63/005']) {
      expect(tilePath(parseTilePath(path))).toBe(path);
    }
  });

  it.each([
    'tile/0/5',
    'tile/0/0005',
    'tile/0/x000/005',
    'tile/0/x1/005',
    'tile/0/005/',
    'tile/01/005',
    'tile/64/005',
    'tile/-1/005',
    'tile/0/005.p/0',
    'tile/0/005.p/256',
    'tile/0/005.p/007',
    'tile/0/005.p/',
    'tile/entries/005.p/300',
    'tile/H/0/005',
    '/tile/0/005',
    'tiles/0/005',
    'tile/0/x010/x000/x000/x000/x000/000',
  ])('refuses %s', (path) => {
    expectLatchkeyError(() => parseTilePath(path), 'LK_LOG_TILE_MALFORMED');
  });

  it('refuses coordinates that have no path', () => {
    expectLatchkeyError(() => tilePath({ kind: 'hash', level: 64, index: 0, width: 256 }), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => tilePath({ kind: 'hash', level: 0, index: 0, width: 0 }), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => tilePath({ kind: 'entries', level: 1, index: 0, width: 9 }), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => tilePath({ kind: 'hash', level: 0, index: -1, width: 9 }), 'LK_LOG_RANGE_INVALID');
  });

  it('index and path round-trip (property)', () => {
    fc.assert(
      fc.property(
        fc.maxSafeNat(),
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 1, max: 256 }),
        (index, level, width) => {
          expect(parseTileIndex(formatTileIndex(index))).toBe(index);
          const tile: TileCoordinate = { kind: 'hash', level, index, width };
          expect(parseTilePath(tilePath(tile))).toEqual(tile);
        },
      ),
    );
  });
});

describe('which tiles a tree size needs', () => {
  it('70,000 leaves: 273 full + a 112-wide partial at level 0, 1 full + 17 at level 1, 1 at level 2', () => {
    expect(tileLevelsForSize(70_000)).toEqual([
      { level: 0, fullTiles: 273, partialWidth: 112 },
      { level: 1, fullTiles: 1, partialWidth: 17 },
      { level: 2, fullTiles: 0, partialWidth: 1 },
    ]);
    const tiles = tilesForSize(70_000);
    expect(tiles).toHaveLength(273 + 1 + 1 + 1 + 1);
    expect(tiles.filter((t) => t.width < TILE_WIDTH).map(tilePath)).toEqual([
      'tile/0/273.p/112',
      'tile/1/001.p/17',
      'tile/2/000.p/1',
    ]);
  });

  it('no tiles for the empty tree; exact multiples have no partial tile', () => {
    expect(tileLevelsForSize(0)).toEqual([]);
    expect(tileLevelsForSize(256)).toEqual([
      { level: 0, fullTiles: 1, partialWidth: 0 },
      { level: 1, fullTiles: 0, partialWidth: 1 },
    ]);
    expect(tileLevelsForSize(2 ** 40).at(-1)).toEqual({ level: 5, fullTiles: 0, partialWidth: 1 });
  });
});

describe('a tree served as tiles', () => {
  const size = 70_000;
  const leaves = Array.from({ length: size }, (_, i) => leafHash(new TextEncoder().encode(`leaf ${i}`)));
  const tree = new MemoryTree(leaves);
  const served = new Map(tilesForSize(size).map((t) => [tilePath(t), tileContent(tree, t)]));
  const fetched: string[] = [];
  const source = tileHashSource(size, (tile) => {
    const bytes = served.get(tilePath(tile));
    if (bytes === undefined) throw new Error(`not served: ${tilePath(tile)}`);
    fetched.push(tilePath(tile));
    return parseTileHashes(bytes, tile.width);
  });

  it('tile contents are the subtree hashes: level 1 hash i is the root of leaves i*256 to i*256+255', () => {
    const level1 = parseTileHashes(served.get('tile/1/000') as Uint8Array, 256);
    expect(level1[5]).toEqual(new MemoryTree(leaves.slice(5 * 256, 6 * 256)).root());
    const partial = parseTileHashes(served.get('tile/0/273.p/112') as Uint8Array, 112);
    expect(partial[111]).toEqual(leaves[size - 1]);
  });

  it('give the same root as the tree, for the full size and for smaller sizes their tiles cover', () => {
    // Against the sequencer's right edge over the leaves themselves, not the tree the tiles came from.
    expect(rootFromHashSource(size, source)).toEqual(rootFromLeafHashes(leaves));
    for (const smaller of [1, 255, 256, 257, 65_535, 65_536, 69_999]) {
      const at = new Map(tilesForSize(smaller).map((t) => [tilePath(t), tileContent(tree, t)]));
      const src = tileHashSource(smaller, (t) => parseTileHashes(at.get(tilePath(t)) as Uint8Array, t.width));
      expect(rootFromHashSource(smaller, src), `size ${smaller}`).toEqual(tree.root(smaller));
    }
  });

  it('give the same inclusion and consistency proofs as the tree', () => {
    for (const index of [0, 1, 255, 256, 65_535, 65_536, 69_887, 69_999]) {
      expect(inclusionProof(source, index, size)).toEqual(inclusionProof(tree, index, size));
    }
    for (const old of [1, 7, 256, 1000, 65_536, 69_999]) {
      expect(consistencyProof(source, old, size)).toEqual(consistencyProof(tree, old, size));
    }
  });

  it('tilesNeeded lists exactly the tiles a computation reads, partial ones only at this size', () => {
    const needed = tilesNeeded(size, (s) => inclusionProof(s, 12_345, size))
      .map(tilePath)
      .sort();
    fetched.length = 0;
    inclusionProof(source, 12_345, size);
    expect([...new Set(fetched)].sort()).toEqual(needed);
    expect(needed.every((path) => served.has(path))).toBe(true);
    expect(needed.length).toBeLessThan(10);
    const forRoot = tilesNeeded(size, (s) => rootFromHashSource(size, s))
      .map(tilePath)
      .sort();
    // 70,000 = 65,536 + 4,096 + 256 + 112: the 4,096 and the 256 are level-1 hashes 256 to 272.
    expect(forRoot).toEqual(['tile/0/273.p/112', 'tile/1/001.p/17', 'tile/2/000.p/1']);
  });

  it('a tile of the wrong length is refused', () => {
    expectLatchkeyError(() => parseTileHashes(new Uint8Array(32 * 255), 256), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseTileHashes(new Uint8Array(32 * 3 + 1), 3), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseTileHashes(new Uint8Array(0), 0), 'LK_LOG_TILE_MALFORMED');
  });

  it('roots from tiles match the literal MTH for every size up to 600 (property)', () => {
    const entries = sampleEntries(600);
    const small = new MemoryTree(entries.map(leafHash));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), (n) => {
        const at = new Map(tilesForSize(n).map((t) => [tilePath(t), tileContent(small, t)]));
        const src = tileHashSource(n, (t) => parseTileHashes(at.get(tilePath(t)) as Uint8Array, t.width));
        expect(rootFromHashSource(n, src)).toEqual(mth(entries.slice(0, n)));
      }),
      { numRuns: 60 },
    );
  });
});

describe('entry bundles', () => {
  const entries = [new Uint8Array(0), Uint8Array.of(1, 2, 3), new Uint8Array(0xffff).fill(7)];

  it('are uint16 big-endian lengths and bytes, and parse back', () => {
    const bundle = encodeEntryBundle(entries);
    expect([...bundle.subarray(0, 7)]).toEqual([0, 0, 0, 3, 1, 2, 3]);
    expect([...bundle.subarray(7, 9)]).toEqual([0xff, 0xff]);
    expect(parseEntryBundle(bundle, 3)).toEqual(entries);
    verifyEntryBundle(entries, entries.map(leafHash));
  });

  it('refuse truncation, extra bytes, a wrong count, an oversized entry and entries of another tile', () => {
    const bundle = encodeEntryBundle(entries);
    expectLatchkeyError(() => parseEntryBundle(bundle.subarray(0, bundle.length - 1), 3), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseEntryBundle(bundle.subarray(0, 8), 3), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseEntryBundle(Uint8Array.of(...bundle, 0), 3), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseEntryBundle(Uint8Array.of(...bundle, 0, 0), 3), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseEntryBundle(bundle, 4), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseEntryBundle(bundle, 2), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => parseEntryBundle(new Uint8Array(0), 1), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => encodeEntryBundle([new Uint8Array(0x10000)]), 'LK_LOG_TILE_MALFORMED');
    expectLatchkeyError(() => encodeEntryBundle([]), 'LK_LOG_TILE_MALFORMED');
    const others = entries.map((e) => leafHash(Uint8Array.of(...e, 0)));
    expectLatchkeyError(() => verifyEntryBundle(entries, others), 'LK_LOG_TILE_MALFORMED');
  });

  it('round-trip (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 256 }), (list) => {
        expect(parseEntryBundle(encodeEntryBundle(list), list.length)).toEqual(list);
      }),
      { numRuns: 50 },
    );
  });
});
