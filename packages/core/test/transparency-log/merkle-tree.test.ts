import {
  appendLeafHash,
  consistencyProof,
  EMPTY_EDGE,
  edgeFromHashSource,
  edgeRoot,
  emptyTreeRoot,
  fromHex,
  inclusionProof,
  leafHash,
  MemoryTree,
  merkleTreeHash,
  nodeHash,
  rootFromHashSource,
  rootFromLeafHashes,
  toHex,
  utf8,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from '../vector-files.js';
import { reference } from './reference-vectors.js';
import { mth, sampleEntries } from './rfc6962-reference.js';

describe('RFC 6962 hashing (reference vectors)', () => {
  it.each(reference.hasher)('$function of the hasher test', (v) => {
    const got =
      v.function === 'leafHash'
        ? leafHash(utf8(v.inputUtf8 ?? ''))
        : nodeHash(utf8(v.leftUtf8 ?? ''), utf8(v.rightUtf8 ?? ''));
    expect(toHex(got)).toBe(v.hashHex);
  });

  it('the empty tree is SHA-256 of the empty string', () => {
    expect(toHex(emptyTreeRoot())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it.each(reference.roots.map((root, size) => ({ size, root })))('MTH of the first $size leaves', ({ size, root }) => {
    const entries = reference.leaves.slice(0, size).map(fromHex);
    expect(toHex(merkleTreeHash(entries))).toBe(root);
    expect(toHex(new MemoryTree(entries.map(leafHash)).root())).toBe(root);
  });

  it('every named node hash is the leaf or node hash it names', () => {
    const leaves = reference.leaves.map((hex) => leafHash(fromHex(hex)));
    const tree = new MemoryTree(leaves);
    const levels = { L: 0, A: 1, B: 2, C: 3 } as const;
    for (const [name, hex] of Object.entries(reference.nodes)) {
      const level = levels[name[0] as keyof typeof levels];
      expect(toHex(tree.nodeHash(level, Number(name.slice(1)))), name).toBe(hex);
    }
  });
});

describe('the right edge (compact range) of the sequencer', () => {
  it('gives the reference root after every append, for sizes 0 to 300', () => {
    const entries = sampleEntries(300);
    let edge = EMPTY_EDGE;
    for (let size = 0; size <= entries.length; size++) {
      // O(log n) memory: one hash per set bit of the size.
      expect(edge.hashes.length).toBe(size.toString(2).replaceAll('0', '').length);
      if (size <= 130 || size % 17 === 0) expect(edgeRoot(edge)).toEqual(mth(entries.slice(0, size)));
      const next = entries[size];
      if (next !== undefined) edge = appendLeafHash(edge, leafHash(next));
    }
  });

  it('is the same edge a hash source gives for that size, so a restarted sequencer resumes', () => {
    const tree = new MemoryTree(sampleEntries(200).map(leafHash));
    let edge = EMPTY_EDGE;
    for (let size = 1; size <= 200; size++) {
      edge = appendLeafHash(edge, tree.nodeHash(0, size - 1));
      expect(edgeFromHashSource(size, tree)).toEqual(edge);
      expect(rootFromHashSource(size, tree)).toEqual(tree.root(size));
    }
  });

  it('leaves the old edge whole and refuses a leaf hash that is not 32 bytes', () => {
    const edge = appendLeafHash(EMPTY_EDGE, leafHash(utf8('a')));
    const before = edgeRoot(edge);
    expectLatchkeyError(() => appendLeafHash(edge, new Uint8Array(31)), 'LK_LOG_RANGE_INVALID');
    expect(Object.isFrozen(edge.hashes)).toBe(true);
    expect(edgeRoot(edge)).toEqual(before);
  });

  it('refuses a size beyond what the source holds', () => {
    const tree = new MemoryTree(sampleEntries(5).map(leafHash));
    expectLatchkeyError(() => tree.root(6), 'LK_LOG_RANGE_INVALID');
    expectLatchkeyError(() => rootFromHashSource(8, tree), 'LK_LOG_RANGE_INVALID');
    expectLatchkeyError(() => rootFromHashSource(-1, tree), 'LK_LOG_RANGE_INVALID');
    expectLatchkeyError(() => rootFromHashSource(1.5, tree), 'LK_LOG_RANGE_INVALID');
  });

  it('agrees with the literal RFC recursion on random trees (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 70 }), (entries) => {
        const root = mth(entries);
        expect(rootFromLeafHashes(entries.map(leafHash))).toEqual(root);
        expect(merkleTreeHash(entries)).toEqual(root);
      }),
      { numRuns: 200 },
    );
  });
});

describe('MemoryTree', () => {
  it('keeps its own copies: editing a leaf given to it or a proof taken from it changes nothing', () => {
    const leaves = sampleEntries(13).map(leafHash);
    const tree = new MemoryTree(leaves);
    const snapshot = () =>
      [...Array(13).keys()].map((i) => [toHex(tree.root(i + 1)), ...inclusionProof(tree, i, 13).map(toHex)].join());
    const before = snapshot();
    for (const leaf of leaves) leaf.fill(0);
    for (const hash of [...inclusionProof(tree, 5, 13), ...consistencyProof(tree, 6, 13)]) hash.fill(0);
    tree.nodeHash(0, 12).fill(0);
    expect(snapshot()).toEqual(before);
  });
});
