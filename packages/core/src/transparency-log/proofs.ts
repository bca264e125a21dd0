import { LatchkeyError } from '../errors.js';
import {
  bitLength,
  isOdd,
  isPowerOfTwo,
  largestPowerOfTwoBelow,
  popCount,
  requireTreeNumber,
  shiftRight,
  trailingZeros,
  xor,
} from './bits.js';
import { HASH_SIZE, type HashSource, nodeHash, rangeHash } from './merkle-tree.js';

/**
 * RFC 9162 §2.1.3 inclusion proofs and §2.1.4 consistency proofs: generation from any hash source, and
 * verification exactly as the RFC's algorithms state, with the proof's length checked first (as
 * transparency-dev/merkle does) so that padding a proof or cutting it short is refused outright.
 */

/** An inclusion proof's claim: the leaf at `index` of the tree of `size` leaves whose root is `root`. */
export interface InclusionClaim {
  index: number;
  size: number;
  leafHash: Uint8Array;
  proof: readonly Uint8Array[];
  root: Uint8Array;
}

/** A consistency proof's claim: the tree of `size1` leaves is a prefix of the tree of `size2`. */
export interface ConsistencyClaim {
  size1: number;
  size2: number;
  root1: Uint8Array;
  root2: Uint8Array;
  proof: readonly Uint8Array[];
}

function badProof(why: string): LatchkeyError {
  return new LatchkeyError('LK_REGISTRY_BAD_PROOF', `The Merkle proof does not verify: ${why}.`);
}

function isTreeNumber(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The one proof length that is right for a leaf index in a tree of `size`: the levels where the paths
 * to `index` and to the last leaf part ("inner"), plus the left siblings above that point ("border").
 */
export function inclusionProofLength(index: number, size: number): number {
  const inner = bitLength(xor(index, size - 1));
  return inner + popCount(shiftRight(index, inner));
}

/** The one proof length that is right for a consistency proof from `size1` to `size2` (0 < size1 < size2). */
export function consistencyProofLength(size1: number, size2: number): number {
  // Below the level of size1's lowest set bit both trees agree, so the proof is an inclusion proof of
  // that subtree, plus its own hash unless it is the whole old tree (size1 a power of two).
  const level = trailingZeros(size1);
  const index = shiftRight(size1 - 1, level);
  const size = shiftRight(size2 - 1, level) + 1;
  return (isPowerOfTwo(size1) ? 0 : 1) + inclusionProofLength(index, size);
}

/** PATH(m, D_n) of RFC 9162 §2.1.3.1, from the leaf's sibling up to the root's child. */
export function inclusionProof(source: HashSource, index: number, size: number): Uint8Array[] {
  requireTreeNumber(size, 'the tree size');
  requireTreeNumber(index, 'the leaf index');
  if (index >= size) {
    throw new LatchkeyError('LK_LOG_RANGE_INVALID', `Leaf ${index} is not in a tree of ${size} leaves.`);
  }
  return path(source, index, 0, size);
}

function path(source: HashSource, index: number, begin: number, end: number): Uint8Array[] {
  if (end - begin === 1) return [];
  const split = begin + largestPowerOfTwoBelow(end - begin);
  if (index < split) return [...path(source, index, begin, split), rangeHash(source, split, end)];
  return [...path(source, index, split, end), rangeHash(source, begin, split)];
}

/**
 * PROOF(m, D_n) of RFC 9162 §2.1.4.1. Equal sizes need no proof. The empty tree has none either: it is
 * consistent with every tree, and RFC 9162 leaves 0 < m; callers special-case it (see tlog-witness).
 */
export function consistencyProof(source: HashSource, size1: number, size2: number): Uint8Array[] {
  requireTreeNumber(size1, 'the old tree size');
  requireTreeNumber(size2, 'the new tree size');
  if (size1 === 0 || size1 > size2) {
    throw new LatchkeyError(
      'LK_LOG_RANGE_INVALID',
      `No consistency proof from ${size1} to ${size2} leaves: the old size must be 1 to the new size.`,
    );
  }
  return size1 === size2 ? [] : subproof(source, size1, 0, size2, true);
}

/** SUBPROOF(m, D[begin:end], b), with m counted from the tree's first leaf. */
function subproof(source: HashSource, m: number, begin: number, end: number, whole: boolean): Uint8Array[] {
  if (m === end) return whole ? [] : [rangeHash(source, begin, end)];
  const split = begin + largestPowerOfTwoBelow(end - begin);
  if (m <= split) return [...subproof(source, m, begin, split, whole), rangeHash(source, split, end)];
  return [...subproof(source, m, split, end, false), rangeHash(source, begin, split)];
}

/**
 * The root that an inclusion proof leads to from a leaf (RFC 9162 §2.1.3.2 steps 1 to 4). Throws
 * `LK_REGISTRY_BAD_PROOF` when the index, the size, the leaf hash or the proof's length cannot be right.
 */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  if (!isTreeNumber(index) || !isTreeNumber(size)) throw badProof('the index and size must be whole numbers');
  if (index >= size) throw badProof(`leaf ${index} is not in a tree of ${size} leaves`);
  if (leafHash.length !== HASH_SIZE) throw badProof(`the leaf hash is not ${HASH_SIZE} bytes`);
  const want = inclusionProofLength(index, size);
  if (proof.length !== want) throw badProof(`${proof.length} hashes where leaf ${index} of ${size} needs ${want}`);
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) throw badProof('the proof is longer than the path');
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = shiftRight(fn, 1);
        sn = shiftRight(sn, 1);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = shiftRight(fn, 1);
    sn = shiftRight(sn, 1);
  }
  if (sn !== 0) throw badProof('the proof is shorter than the path');
  return r;
}

/** Checks an inclusion proof (RFC 9162 §2.1.3.2); throws `LK_REGISTRY_BAD_PROOF` unless it holds. */
export function verifyInclusionProof(claim: InclusionClaim): void {
  const root = rootFromInclusionProof(claim.index, claim.size, claim.leafHash, claim.proof);
  if (!bytesEqual(root, claim.root)) throw badProof(`the path from leaf ${claim.index} does not reach the root`);
}

/**
 * Checks a consistency proof (RFC 9162 §2.1.4.2); throws `LK_REGISTRY_BAD_PROOF` unless it holds. As in
 * transparency-dev/merkle, an old size of 0 is refused (nothing is proved by it; a caller that accepts
 * the empty tree says so itself), equal sizes need an empty proof and equal roots, and a smaller new
 * size is refused.
 */
export function verifyConsistencyProof(claim: ConsistencyClaim): void {
  const { size1, size2, root1, root2, proof } = claim;
  if (!isTreeNumber(size1) || !isTreeNumber(size2)) throw badProof('the sizes must be whole numbers');
  if (size2 < size1) throw badProof(`the new size ${size2} is smaller than the old size ${size1}`);
  if (size1 === 0) throw badProof('a proof from the empty tree proves nothing');
  if (size1 === size2) {
    if (proof.length !== 0) throw badProof('equal sizes need an empty proof');
    if (!bytesEqual(root1, root2)) throw badProof('two trees of the same size have different roots');
    return;
  }
  const want = consistencyProofLength(size1, size2);
  if (proof.length !== want) throw badProof(`${proof.length} hashes where ${size1} to ${size2} needs ${want}`);
  const [first, second] = rootsFromConsistencyProof(size1, size2, root1, proof);
  if (!bytesEqual(first, root1)) throw badProof('the proof does not lead to the old root');
  if (!bytesEqual(second, root2)) throw badProof('the proof does not lead to the new root');
}

/** RFC 9162 §2.1.4.2 steps 2 to 6: the old and new roots the proof leads to. */
function rootsFromConsistencyProof(
  size1: number,
  size2: number,
  root1: Uint8Array,
  proof: readonly Uint8Array[],
): [Uint8Array, Uint8Array] {
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = shiftRight(fn, 1);
    sn = shiftRight(sn, 1);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) throw badProof('the proof is longer than the path');
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = shiftRight(fn, 1);
        sn = shiftRight(sn, 1);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = shiftRight(fn, 1);
    sn = shiftRight(sn, 1);
  }
  if (sn !== 0) throw badProof('the proof is shorter than the path');
  return [fr, sr];
}
