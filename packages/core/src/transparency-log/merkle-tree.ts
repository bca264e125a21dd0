import { sha256 } from '@noble/hashes/sha2.js';
import { LatchkeyError } from '../errors.js';
import { bitLength, isOdd, largestPowerOfTwoBelow, requireTreeNumber, shiftRight } from './bits.js';

/**
 * RFC 6962 §2.1 Merkle tree hashing with SHA-256: one append-only tree per log, whose shape is fixed by
 * its size alone (no padding). Leaves and nodes hash with different prefixes so that no leaf can pass
 * for an inner node (a second-preimage defence).
 */

/** The size of every hash in the tree, in bytes. */
export const HASH_SIZE = 32;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** MTH({}) = SHA-256 of the empty string (RFC 6962 §2.1): the root of a tree with no leaves. */
export function emptyTreeRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** The hash of one log entry: SHA-256(0x00 || entry). */
export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256.create().update(LEAF_PREFIX).update(entry).digest();
}

/** The hash of an inner node: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256.create().update(NODE_PREFIX).update(left).update(right).digest();
}

/** Throws `LK_LOG_RANGE_INVALID` unless `hash` is 32 bytes. */
export function requireHash(hash: Uint8Array, what: string): void {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_SIZE) {
    throw new LatchkeyError('LK_LOG_RANGE_INVALID', `${what} must be a ${HASH_SIZE}-byte hash.`);
  }
}

/**
 * The hashes of the tree's nodes by position: `nodeHash(level, index)` is the root of the perfect
 * subtree of 2^level leaves that starts at leaf index * 2^level. Proofs and roots are built from these,
 * whatever keeps them: the leaves in memory, a database, or tiles fetched from a log.
 */
export interface HashSource {
  nodeHash(level: number, index: number): Uint8Array;
}

/**
 * The root of a list of hashes taken as the leaves of a tree: MTH over leaf hashes. It also gives the
 * root of any perfect subtree from the equal-sized subtree hashes below it (a tile's hashes, say).
 */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Uint8Array {
  let edge = EMPTY_EDGE;
  for (const hash of hashes) edge = appendLeafHash(edge, hash);
  return edgeRoot(edge);
}

/** MTH(D_n) of RFC 6962 §2.1 over the entries themselves. */
export function merkleTreeHash(entries: readonly Uint8Array[]): Uint8Array {
  return rootFromLeafHashes(entries.map(leafHash));
}

/**
 * The tree's right edge (a "compact range" from 0 to size): the roots of the perfect subtrees that the
 * binary digits of `size` cut the leaves into, biggest first. That is all a sequencer needs to keep to
 * append leaves and to compute the root, O(log n) hashes for n leaves. Immutable: an append returns a
 * new edge, so a failure part-way leaves the old one whole.
 */
export interface TreeEdge {
  readonly size: number;
  readonly hashes: readonly Uint8Array[];
}

/** The edge of the empty tree. */
export const EMPTY_EDGE: TreeEdge = Object.freeze({ size: 0, hashes: Object.freeze([]) });

/** The edge after appending one leaf hash: the new leaf merges with each equal-sized subtree on its left. */
export function appendLeafHash(edge: TreeEdge, hash: Uint8Array): TreeEdge {
  requireHash(hash, 'a leaf hash');
  requireTreeNumber(edge.size + 1, 'the tree size');
  const hashes = edge.hashes.slice();
  let merged = hash;
  // Each trailing 1 bit of the old size is a perfect subtree as big as what is being carried up.
  for (let size = edge.size; isOdd(size); size = shiftRight(size, 1)) {
    merged = nodeHash(hashes.pop() as Uint8Array, merged);
  }
  hashes.push(merged);
  return Object.freeze({ size: edge.size + 1, hashes: Object.freeze(hashes) });
}

/** The root of the tree an edge describes: its subtrees folded from the right (RFC 6962's split at k). */
export function edgeRoot(edge: TreeEdge): Uint8Array {
  const { hashes } = edge;
  if (hashes.length === 0) return emptyTreeRoot();
  let root = hashes[hashes.length - 1] as Uint8Array;
  for (let i = hashes.length - 2; i >= 0; i--) root = nodeHash(hashes[i] as Uint8Array, root);
  return root;
}

/**
 * The edge of a tree of `size` leaves, read from a hash source (tiles, a database): one node per set
 * bit of `size`. Lets a restarted sequencer, or a client holding tiles, resume without every leaf.
 */
export function edgeFromHashSource(size: number, source: HashSource): TreeEdge {
  requireTreeNumber(size, 'the tree size');
  const hashes: Uint8Array[] = [];
  let start = 0;
  for (let level = bitLength(size) - 1; level >= 0; level--) {
    const width = 2 ** level;
    if (shiftRight(size, level) % 2 === 0) continue;
    const hash = source.nodeHash(level, start / width);
    requireHash(hash, `the node at level ${level}, index ${start / width}`);
    hashes.push(hash);
    start += width;
  }
  return Object.freeze({ size, hashes: Object.freeze(hashes) });
}

/** The root of a tree of `size` leaves from a hash source, such as the tiles a log serves. */
export function rootFromHashSource(size: number, source: HashSource): Uint8Array {
  return edgeRoot(edgeFromHashSource(size, source));
}

/**
 * MTH(D[begin:end]) from a hash source, for the ranges RFC 6962's recursion produces: `begin` is a
 * multiple of the largest power of two below `end - begin`, so the range splits into perfect subtrees.
 */
export function rangeHash(source: HashSource, begin: number, end: number): Uint8Array {
  const width = end - begin;
  if (width <= 0) return emptyTreeRoot();
  const level = bitLength(width) - 1;
  if (2 ** level === width && begin % width === 0) return source.nodeHash(level, begin / width);
  const split = begin + largestPowerOfTwoBelow(width);
  return nodeHash(rangeHash(source, begin, split), rangeHash(source, split, end));
}

/**
 * A whole tree kept in memory, every level of complete nodes: a hash source for proofs over a list of
 * leaf hashes (tests, small logs, a client that downloaded every entry).
 */
export class MemoryTree implements HashSource {
  /** levels[h][i] is the root of the perfect subtree of 2^h leaves starting at leaf i * 2^h. */
  readonly #levels: Uint8Array[][] = [[]];

  constructor(leafHashes: readonly Uint8Array[] = []) {
    for (const hash of leafHashes) this.append(hash);
  }

  get size(): number {
    return (this.#levels[0] as Uint8Array[]).length;
  }

  /** Appends one leaf hash, completing the nodes it closes on every level. */
  append(hash: Uint8Array): void {
    requireHash(hash, 'a leaf hash');
    let level = 0;
    // A copy: the caller's array stays the caller's, so changing it later cannot rewrite the tree.
    let current: Uint8Array = hash.slice();
    for (;;) {
      const row = this.#levels[level] ?? [];
      this.#levels[level] = row;
      row.push(current);
      if (row.length % 2 === 1) return;
      current = nodeHash(row[row.length - 2] as Uint8Array, current);
      level++;
    }
  }

  nodeHash(level: number, index: number): Uint8Array {
    const hash = this.#levels[level]?.[index];
    if (hash === undefined) {
      throw new LatchkeyError('LK_LOG_RANGE_INVALID', `No complete node at level ${level}, index ${index}.`);
    }
    // A copy: proofs hand these out, and a caller that edits a proof must not edit the tree with it.
    return hash.slice();
  }

  /** The root of the first `size` leaves (any size up to the current one). */
  root(size = this.size): Uint8Array {
    if (size > this.size) {
      throw new LatchkeyError('LK_LOG_RANGE_INVALID', `The tree has ${this.size} leaves, not ${size}.`);
    }
    return rootFromHashSource(size, this);
  }
}
