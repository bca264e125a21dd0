import {
  type Checkpoint,
  consistencyProof,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  emptyTreeRoot,
  formatCheckpoint,
  fromBase64,
  leafHash,
  MemoryTree,
  openCheckpoint,
  parseCheckpoint,
  parseNote,
  signCheckpoint,
  toBase64,
  verifyTreeExtends,
} from '@latchkey/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from '../vector-files.js';
import { noteVectors, testSeed } from './note-vectors.js';
import { sampleEntries } from './rfc6962-reference.js';

const origin = 'latchkey.example/log';
const logSigner = ed25519NoteSigner(origin, testSeed('log'));
const logKey = ed25519NoteVerifier(origin, ed25519.getPublicKey(testSeed('log')));
const tree = new MemoryTree(sampleEntries(40).map(leafHash));
const checkpointOf = (size: number): Checkpoint => ({ origin, size, rootHash: tree.root(size), extensions: [] });

describe('checkpoint text (tlog-checkpoint)', () => {
  it.each(noteVectors.checkpoints)('$name parses, and formats back byte for byte', (v) => {
    const note = parseNote(v.note);
    const checkpoint = parseCheckpoint(note.text);
    expect(checkpoint).toEqual({ origin: v.origin, size: v.size, rootHash: fromBase64(v.rootBase64), extensions: [] });
    expect(formatCheckpoint(checkpoint)).toBe(note.text);
  });

  it('keeps extension lines, in order, signed with the rest', () => {
    const withExtensions = { ...checkpointOf(3), extensions: ['ext one', 'ext two'] };
    const opened = openCheckpoint(signCheckpoint(withExtensions, [logSigner]), { origin, verifiers: [logKey] });
    expect(opened.checkpoint.extensions).toEqual(['ext one', 'ext two']);
    expect(opened.text.endsWith('ext one\next two\n')).toBe(true);
  });

  const root = toBase64(tree.root(5), true);
  const malformed: [string, string][] = [
    ['two lines', `${origin}\n5\n`],
    ['no final newline', `${origin}\n5\n${root}`],
    ['an empty origin', `\n5\n${root}\n`],
    ['a leading zero in the size', `${origin}\n05\n${root}\n`],
    ['a signed size', `${origin}\n+5\n${root}\n`],
    ['a size with a space', `${origin}\n 5\n${root}\n`],
    ['a size past 2^53', `${origin}\n9007199254740993\n${root}\n`],
    ['a hex size', `${origin}\n0x5\n${root}\n`],
    ['a 31-byte root', `${origin}\n5\n${toBase64(new Uint8Array(31), true)}\n`],
    ['an unpadded root', `${origin}\n5\n${root.replace(/=+$/, '')}\n`],
    ['an empty extension line', `${origin}\n5\n${root}\n\n`],
  ];
  it.each(malformed)('refuses %s with LK_LOG_CHECKPOINT_MALFORMED', (_, text) => {
    expectLatchkeyError(() => parseCheckpoint(text), 'LK_LOG_CHECKPOINT_MALFORMED');
  });

  it('size 0 parses; "0" is its only spelling', () => {
    expect(parseCheckpoint(`${origin}\n0\n${toBase64(emptyTreeRoot(), true)}\n`).size).toBe(0);
    expectLatchkeyError(() => parseCheckpoint(`${origin}\n00\n${root}\n`), 'LK_LOG_CHECKPOINT_MALFORMED');
  });

  it('format and parse are inverse (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\n')),
        fc.maxSafeNat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(
          fc.string({ minLength: 1, maxLength: 10 }).filter((s) => !s.includes('\n')),
          { maxLength: 3 },
        ),
        (o, size, rootHash, extensions) => {
          const checkpoint = { origin: o, size, rootHash, extensions };
          expect(parseCheckpoint(formatCheckpoint(checkpoint))).toEqual(checkpoint);
        },
      ),
    );
  });
});

describe('a signed checkpoint', () => {
  it('opens with the log key for its origin', () => {
    const opened = openCheckpoint(signCheckpoint(checkpointOf(7), [logSigner]), { origin, verifiers: [logKey] });
    expect(opened.checkpoint.size).toBe(7);
    expect(opened.checkpoint.rootHash).toEqual(tree.root(7));
  });

  it('of another log, though signed by a trusted key, is refused', () => {
    const other = signCheckpoint({ ...checkpointOf(7), origin: 'other.example/log' }, [logSigner]);
    expectLatchkeyError(() => openCheckpoint(other, { origin, verifiers: [logKey] }), 'LK_LOG_ORIGIN_MISMATCH');
  });

  it('with a rewritten size or root is refused', () => {
    const signed = signCheckpoint(checkpointOf(7), [logSigner]);
    const resized = signed.replace('\n7\n', '\n8\n');
    expectLatchkeyError(() => openCheckpoint(resized, { origin, verifiers: [logKey] }), 'LK_LOG_NOTE_BAD_SIGNATURE');
    const rerooted = signed.replace(toBase64(tree.root(7), true), toBase64(tree.root(8), true));
    expectLatchkeyError(() => openCheckpoint(rerooted, { origin, verifiers: [logKey] }), 'LK_LOG_NOTE_BAD_SIGNATURE');
  });

  it('signed by someone else is refused', () => {
    const forger = ed25519NoteSigner(origin, testSeed('forger'));
    const forged = signCheckpoint(checkpointOf(7), [forger]);
    // Same name, another key: another key id, so the log key does not even apply.
    expectLatchkeyError(() => openCheckpoint(forged, { origin, verifiers: [logKey] }), 'LK_LOG_NOTE_UNVERIFIED');
  });
});

describe('a client moving from its last verified tree to a new one', () => {
  const head = (size: number) => ({ size, rootHash: tree.root(size) });

  it('accepts a consistent larger tree, the same tree, and anything after the empty tree', () => {
    verifyTreeExtends(head(10), head(30), consistencyProof(tree, 10, 30));
    verifyTreeExtends(head(10), head(10), []);
    verifyTreeExtends(head(0), head(30), []);
  });

  it('calls a smaller tree a rollback', () => {
    expectLatchkeyError(() => verifyTreeExtends(head(30), head(10), []), 'LK_REGISTRY_ROLLBACK');
  });

  it('calls the same size with another root a fork', () => {
    const forked = { size: 10, rootHash: new MemoryTree(sampleEntries(10).reverse().map(leafHash)).root() };
    expectLatchkeyError(() => verifyTreeExtends(head(10), forked, []), 'LK_REGISTRY_FORK');
  });

  it('refuses a larger tree whose proof does not hold (a rewritten history)', () => {
    const rewritten = [...sampleEntries(40)];
    rewritten[3] = new TextEncoder().encode('rewritten');
    const other = new MemoryTree(rewritten.map(leafHash));
    const next = { size: 30, rootHash: other.root(30) };
    expectLatchkeyError(
      () => verifyTreeExtends(head(10), next, consistencyProof(other, 10, 30)),
      'LK_REGISTRY_BAD_PROOF',
    );
    expectLatchkeyError(() => verifyTreeExtends(head(10), head(30), []), 'LK_REGISTRY_BAD_PROOF');
    expectLatchkeyError(() => verifyTreeExtends(head(10), head(10), [tree.root(1)]), 'LK_REGISTRY_BAD_PROOF');
  });
});
