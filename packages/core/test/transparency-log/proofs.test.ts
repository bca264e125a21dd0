import {
  consistencyProof,
  consistencyProofLength,
  fromBase64,
  fromHex,
  inclusionProof,
  inclusionProofLength,
  leafHash,
  MemoryTree,
  rootFromInclusionProof,
  toHex,
  verifyConsistencyProof,
  verifyInclusionProof,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError, loadVectors } from '../vector-files.js';
import { reference } from './reference-vectors.js';
import { mth, referencePath, referenceProof, sampleEntries } from './rfc6962-reference.js';

interface GoldenInclusion {
  name: string;
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[];
  desc: string;
  wantErr: boolean;
}
interface GoldenConsistency {
  name: string;
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[];
  desc: string;
  wantErr: boolean;
}

const b64 = (text: string) => fromBase64(text);
const referenceTree = new MemoryTree(reference.leaves.map((hex) => leafHash(fromHex(hex))));
const named = (names: string[]) => names.map((name) => toHex(fromHex(reference.nodes[name] as string)));

describe('inclusion and consistency paths of the reference', () => {
  it.each(reference.inclusion)('PATH($index, D[$size])', ({ index, size, path }) => {
    const proof = inclusionProof(referenceTree, index, size);
    expect(proof.map(toHex)).toEqual(named(path));
    const root = fromHex(reference.roots[size] as string);
    verifyInclusionProof({ index, size, leafHash: referenceTree.nodeHash(0, index), proof, root });
  });

  it.each(reference.consistency)('PROOF($size1, D[$size2])', ({ size1, size2, path }) => {
    const proof = consistencyProof(referenceTree, size1, size2);
    expect(proof.map(toHex)).toEqual(named(path));
    const [root1, root2] = [reference.roots[size1], reference.roots[size2]].map((hex) => fromHex(hex as string));
    verifyConsistencyProof({ size1, size2, root1: root1 as Uint8Array, root2: root2 as Uint8Array, proof });
  });
});

describe('transparency-dev/merkle golden files', () => {
  const inclusion = loadVectors<GoldenInclusion>('transparency-dev-merkle-inclusion.json');
  const consistency = loadVectors<GoldenConsistency>('transparency-dev-merkle-consistency.json');

  it('are all here: 98 inclusion and 98 consistency files, both kinds of outcome', () => {
    expect(inclusion.vectors).toHaveLength(98);
    expect(consistency.vectors).toHaveLength(98);
    expect(inclusion.source).toMatch(/transparency-dev\/merkle@417fb0c/);
    for (const file of [inclusion, consistency]) {
      expect(file.vectors.some((v) => v.wantErr)).toBe(true);
      expect(file.vectors.some((v) => !v.wantErr)).toBe(true);
    }
  });

  it.each(inclusion.vectors)('$name ($desc)', (v) => {
    const claim = {
      index: v.leafIdx,
      size: v.treeSize,
      leafHash: b64(v.leafHash),
      proof: v.proof.map(b64),
      root: b64(v.root),
    };
    if (v.wantErr) expectLatchkeyError(() => verifyInclusionProof(claim), 'LK_REGISTRY_BAD_PROOF');
    else expect(() => verifyInclusionProof(claim)).not.toThrow();
  });

  it.each(consistency.vectors)('$name ($desc)', (v) => {
    const claim = {
      size1: v.size1,
      size2: v.size2,
      root1: b64(v.root1),
      root2: b64(v.root2),
      proof: v.proof.map(b64),
    };
    if (v.wantErr) expectLatchkeyError(() => verifyConsistencyProof(claim), 'LK_REGISTRY_BAD_PROOF');
    else expect(() => verifyConsistencyProof(claim)).not.toThrow();
  });
});

const hexes = (hashes: readonly Uint8Array[]) => hashes.map(toHex).join(',');

describe('against the literal RFC recursion, every size 1 to 130', () => {
  const entries = sampleEntries(130);
  const tree = new MemoryTree(entries.map(leafHash));
  const roots = Array.from({ length: 131 }, (_, size) => mth(entries.slice(0, size)));

  it('every inclusion proof is PATH byte for byte, has the exact length and verifies', () => {
    for (let size = 1; size <= 130; size++) {
      const d = entries.slice(0, size);
      for (let index = 0; index < size; index++) {
        const proof = inclusionProof(tree, index, size);
        // Compared as hex: vitest's deep equality over thousands of byte arrays is what would be slow.
        expect(hexes(proof)).toBe(hexes(referencePath(index, d)));
        expect(proof.length).toBe(inclusionProofLength(index, size));
        const root = roots[size] as Uint8Array;
        verifyInclusionProof({ index, size, leafHash: tree.nodeHash(0, index), proof, root });
      }
    }
  });

  it('every consistency proof is PROOF byte for byte, has the exact length and verifies', () => {
    for (let size2 = 1; size2 <= 130; size2++) {
      const d = entries.slice(0, size2);
      for (let size1 = 1; size1 <= size2; size1++) {
        const proof = consistencyProof(tree, size1, size2);
        expect(hexes(proof)).toBe(size1 === size2 ? '' : hexes(referenceProof(size1, d)));
        if (size1 < size2) expect(proof.length).toBe(consistencyProofLength(size1, size2));
        const [root1, root2] = [roots[size1] as Uint8Array, roots[size2] as Uint8Array];
        verifyConsistencyProof({ size1, size2, root1, root2, proof });
      }
    }
  });
});

describe('what a verifier refuses', () => {
  const tree = new MemoryTree(sampleEntries(64).map(leafHash));
  const root = (size: number) => tree.root(size);

  it('inclusion: index out of range, size 0, a short leaf hash, non-integer numbers', () => {
    const leaf = tree.nodeHash(0, 3);
    const proof = inclusionProof(tree, 3, 10);
    const ok = { index: 3, size: 10, leafHash: leaf, proof, root: root(10) };
    expect(() => verifyInclusionProof(ok)).not.toThrow();
    for (const bad of [
      { ...ok, index: 10 },
      { ...ok, index: 0, size: 0, proof: [] },
      { ...ok, leafHash: leaf.subarray(0, 31) },
      { ...ok, index: 3.5 },
      { ...ok, size: Number.MAX_SAFE_INTEGER + 1 },
      { ...ok, index: -1 },
      { ...ok, proof: [...proof, proof[0] as Uint8Array] },
      { ...ok, proof: proof.slice(1) },
      { ...ok, proof: [] },
    ]) {
      expectLatchkeyError(() => verifyInclusionProof(bad), 'LK_REGISTRY_BAD_PROOF');
    }
  });

  it('inclusion at size 1: the proof is empty and the root is the leaf', () => {
    const leaf = tree.nodeHash(0, 0);
    expect(inclusionProof(tree, 0, 1)).toEqual([]);
    expect(rootFromInclusionProof(0, 1, leaf, [])).toEqual(leaf);
  });

  it('consistency: size 0 (even 0 to 0), a smaller new size, equal sizes with a proof or other roots', () => {
    const empty = root(0);
    const cases = [
      { size1: 0, size2: 0, root1: empty, root2: empty, proof: [] },
      { size1: 0, size2: 5, root1: empty, root2: root(5), proof: [] },
      { size1: 6, size2: 5, root1: root(6), root2: root(5), proof: [] },
      { size1: 5, size2: 5, root1: root(5), root2: root(5), proof: [root(5)] },
      { size1: 5, size2: 5, root1: root(5), root2: root(6), proof: [] },
      { size1: 5, size2: 9, root1: root(5), root2: root(9), proof: [] },
      { size1: 5, size2: 9, root1: root(5), root2: root(9), proof: [...consistencyProof(tree, 5, 9), root(1)] },
      { size1: 5, size2: 9, root1: root(5), root2: root(9), proof: consistencyProof(tree, 5, 9).slice(0, -1) },
      { size1: 5.5, size2: 9, root1: root(5), root2: root(9), proof: consistencyProof(tree, 5, 9) },
    ];
    for (const claim of cases) expectLatchkeyError(() => verifyConsistencyProof(claim), 'LK_REGISTRY_BAD_PROOF');
    expect(() =>
      verifyConsistencyProof({ size1: 5, size2: 5, root1: root(5), root2: root(5), proof: [] }),
    ).not.toThrow();
  });

  it('generation refuses what no proof exists for', () => {
    expectLatchkeyError(() => inclusionProof(tree, 5, 5), 'LK_LOG_RANGE_INVALID');
    expectLatchkeyError(() => inclusionProof(tree, 0, 65), 'LK_LOG_RANGE_INVALID');
    expectLatchkeyError(() => consistencyProof(tree, 0, 5), 'LK_LOG_RANGE_INVALID');
    expectLatchkeyError(() => consistencyProof(tree, 6, 5), 'LK_LOG_RANGE_INVALID');
    expectLatchkeyError(() => consistencyProof(tree, 5, 65), 'LK_LOG_RANGE_INVALID');
  });

  it('proof lengths past 2^32 leaves are still exact (no 32-bit arithmetic)', () => {
    const size = 2 ** 40 + 12345;
    // The last leaf climbs the right edge: one left sibling per set bit of 2^40 + 12344 (1 + 5).
    expect(inclusionProofLength(size - 1, size)).toBe(6);
    expect(inclusionProofLength(0, size)).toBe(41);
    expect(consistencyProofLength(2 ** 33, 2 ** 34)).toBe(1);
    // 2^33 + 1: its last leaf's path below 2^34 (33 hashes + the left half) and the old subtree itself.
    expect(consistencyProofLength(2 ** 33 + 1, 2 ** 34)).toBe(35);
  });
});

describe('random trees (property)', () => {
  // Five leaves more than the tree proved, so a claim of a wrong (bigger) size can carry that size's
  // real root: a proof's hashes are opaque, so a wrong size is only refused against a root it does not reach.
  const treeArb = fc.integer({ min: 1, max: 300 }).map((n) => {
    const entries = sampleEntries(n + 5);
    const tree = new MemoryTree(entries.map(leafHash));
    return { size: n, tree };
  });

  it('any flipped bit, wrong index or wrong size in an inclusion proof is refused', () => {
    fc.assert(
      fc.property(treeArb, fc.nat(), fc.nat(), fc.nat(7), fc.integer({ min: 1, max: 5 }), (t, i, pick, bit, delta) => {
        const size = t.size;
        const index = i % size;
        const proof = inclusionProof(t.tree, index, size);
        const claim = { index, size, leafHash: t.tree.nodeHash(0, index), proof, root: t.tree.root(size) };
        verifyInclusionProof(claim);
        if (proof.length > 0) {
          const flipped = proof.map((h) => h.slice());
          const target = flipped[pick % flipped.length] as Uint8Array;
          target[pick % 32] = (target[pick % 32] as number) ^ (1 << bit);
          expectLatchkeyError(() => verifyInclusionProof({ ...claim, proof: flipped }), 'LK_REGISTRY_BAD_PROOF');
        }
        const leaf = claim.leafHash.slice();
        leaf[pick % 32] = (leaf[pick % 32] as number) ^ (1 << bit);
        expectLatchkeyError(() => verifyInclusionProof({ ...claim, leafHash: leaf }), 'LK_REGISTRY_BAD_PROOF');
        if (size > 1) {
          const other = (index + delta) % size === index ? (index + 1) % size : (index + delta) % size;
          expectLatchkeyError(() => verifyInclusionProof({ ...claim, index: other }), 'LK_REGISTRY_BAD_PROOF');
        }
        const wrongSize = { ...claim, size: size + delta, root: t.tree.root(size + delta) };
        expectLatchkeyError(() => verifyInclusionProof(wrongSize), 'LK_REGISTRY_BAD_PROOF');
        if (index < size - delta) {
          const smaller = { ...claim, size: size - delta, root: t.tree.root(size - delta) };
          expectLatchkeyError(() => verifyInclusionProof(smaller), 'LK_REGISTRY_BAD_PROOF');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('consistency between random pairs verifies, and any flipped bit or wrong size is refused', () => {
    fc.assert(
      fc.property(treeArb, fc.nat(), fc.nat(), fc.nat(7), fc.integer({ min: 1, max: 5 }), (t, a, pick, bit, delta) => {
        const size2 = t.size;
        const size1 = 1 + (a % size2);
        const proof = consistencyProof(t.tree, size1, size2);
        const claim = { size1, size2, root1: t.tree.root(size1), root2: t.tree.root(size2), proof };
        verifyConsistencyProof(claim);
        if (proof.length > 0) {
          const flipped = proof.map((h) => h.slice());
          const target = flipped[pick % flipped.length] as Uint8Array;
          target[pick % 32] = (target[pick % 32] as number) ^ (1 << bit);
          expectLatchkeyError(() => verifyConsistencyProof({ ...claim, proof: flipped }), 'LK_REGISTRY_BAD_PROOF');
        }
        const root1 = claim.root1.slice();
        root1[pick % 32] = (root1[pick % 32] as number) ^ (1 << bit);
        expectLatchkeyError(() => verifyConsistencyProof({ ...claim, root1 }), 'LK_REGISTRY_BAD_PROOF');
        const bigger = { ...claim, size2: size2 + delta, root2: t.tree.root(size2 + delta) };
        expectLatchkeyError(() => verifyConsistencyProof(bigger), 'LK_REGISTRY_BAD_PROOF');
        if (size1 > delta && size1 < size2) {
          const older = { ...claim, size1: size1 - delta, root1: t.tree.root(size1 - delta) };
          expectLatchkeyError(() => verifyConsistencyProof(older), 'LK_REGISTRY_BAD_PROOF');
        }
      }),
      { numRuns: 300 },
    );
  });
});
