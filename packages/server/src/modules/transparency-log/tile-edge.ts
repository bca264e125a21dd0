import {
  appendLeafHash,
  EMPTY_EDGE,
  edgeRoot,
  HASH_SIZE,
  rootFromLeafHashes,
  TILE_WIDTH,
  type TreeEdge,
} from '@latchkey/core';

/**
 * What the sequencer keeps of the tree between batches: the hashes of the partial tile at each tile
 * level (level 0: leaf hashes; level t: roots of the full tiles of level t - 1 not yet grouped into a
 * full tile of level t), and the tree's right edge for the root. The partial tiles are exactly what the
 * next appends complete into full tiles, and they are read back from stored rows after a restart or
 * after another node appended (see {@link edgeFromPartialTiles}).
 */
export interface TileEdge {
  readonly size: number;
  /** partial[t] holds floor(size / 256^t) mod 256 hashes: the partial tile of level t. */
  readonly partial: readonly (readonly Uint8Array[])[];
  readonly edge: TreeEdge;
}

/** A tile that an append completed: 256 hashes, and the root of the subtree they span. */
export interface CompletedTile {
  readonly level: number;
  readonly index: number;
  readonly hashes: Uint8Array;
  readonly root: Uint8Array;
}

export const EMPTY_TILE_EDGE: TileEdge = Object.freeze({ size: 0, partial: Object.freeze([]), edge: EMPTY_EDGE });

/**
 * Builds the state of a tree of `size` leaves from its partial tiles. The right edge of the tree is the
 * right edges of the partial tiles, top level first: the binary digits of `size` at positions 8t..8t+7
 * are the width of the partial tile of level t, and the full tiles are all inside the level above.
 */
export function edgeFromPartialTiles(size: number, partial: readonly (readonly Uint8Array[])[]): TileEdge {
  const hashes: Uint8Array[] = [];
  for (let level = partial.length - 1; level >= 0; level--) {
    let edge = EMPTY_EDGE;
    for (const hash of partial[level] ?? []) edge = appendLeafHash(edge, hash);
    hashes.push(...edge.hashes);
  }
  return Object.freeze({
    size,
    partial: Object.freeze(partial.map((row) => Object.freeze(row.slice()))),
    edge: Object.freeze({ size, hashes: Object.freeze(hashes) }),
  });
}

/**
 * Appends leaf hashes: the new state (the old one is untouched, so a failed batch leaves it whole) and
 * the tiles the batch completed, lowest level first, for storing with the batch.
 */
export function appendToTileEdge(
  state: TileEdge,
  leafHashes: readonly Uint8Array[],
): { state: TileEdge; completed: CompletedTile[] } {
  const partial = state.partial.map((row) => row.slice());
  const completed: CompletedTile[] = [];
  let edge = state.edge;
  let size = state.size;
  for (const hash of leafHashes) {
    edge = appendLeafHash(edge, hash);
    size++;
    let carried = hash;
    for (let level = 0; ; level++) {
      const row = partial[level] ?? [];
      partial[level] = row;
      row.push(carried);
      if (row.length < TILE_WIDTH) break;
      // The tile is full: its root is one hash of the level above, and its own row starts afresh.
      const root = rootFromLeafHashes(row);
      completed.push({ level, index: tileCount(size, level + 1) - 1, hashes: concatHashes(row), root });
      partial[level] = [];
      carried = root;
    }
  }
  return {
    state: Object.freeze({ size, partial: Object.freeze(partial.map((r) => Object.freeze(r))), edge }),
    completed,
  };
}

/** The root of the tree the state describes. */
export function tileEdgeRoot(state: TileEdge): Uint8Array {
  return edgeRoot(state.edge);
}

/** How many full tiles of `level - 1` a tree of `size` has, that is how many hashes at tile level `level`. */
function tileCount(size: number, level: number): number {
  return Math.floor(size / TILE_WIDTH ** level);
}

/** A tile's bytes: its hashes one after the other. */
export function concatHashes(hashes: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hashes.length * HASH_SIZE);
  for (const [i, hash] of hashes.entries()) out.set(hash, i * HASH_SIZE);
  return out;
}

/** For each tile level of a tree of `size`: the first index of its partial tile and its width. */
export function partialTileRanges(size: number): { level: number; from: number; to: number }[] {
  const ranges: { level: number; from: number; to: number }[] = [];
  for (let level = 0; tileCount(size, level) > 0; level++) {
    const count = tileCount(size, level);
    ranges.push({ level, from: count - (count % TILE_WIDTH), to: count });
  }
  return ranges;
}
