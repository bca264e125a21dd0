import {
  type AddCheckpointRequest,
  consistencyProof,
  cosignatureSigner,
  cosignatureVerifier,
  decideAddCheckpoint,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  emptyTreeRoot,
  encodeAddCheckpointRequest,
  leafHash,
  MemoryTree,
  openNote,
  parseAddCheckpointRequest,
  requestOrigin,
  signCheckpoint,
  TLOG_SIZE_CONTENT_TYPE,
  type TrustedLog,
  toBase64,
  utf8,
  type WitnessDecision,
  type WitnessLogState,
} from '@latchkey/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from '../vector-files.js';
import { noteVectors, testSeed } from './note-vectors.js';
import { sampleEntries } from './rfc6962-reference.js';

const origin = 'latchkey.example/log';
const logSigner = ed25519NoteSigner(origin, testSeed('log'));
const log: TrustedLog = { origin, verifiers: [ed25519NoteVerifier(origin, ed25519.getPublicKey(testSeed('log')))] };
const now = 1_800_000_000;
const cosigner = cosignatureSigner('witness.example', testSeed('witness'), now);
const cosignerKey = cosignatureVerifier('witness.example', ed25519.getPublicKey(testSeed('witness')));
const tree = new MemoryTree(sampleEntries(50).map(leafHash));

function signed(size: number, rootHash = tree.root(size), signer = logSigner, o = origin): string {
  return signCheckpoint({ origin: o, size, rootHash, extensions: [] }, [signer]);
}
function state(size: number, rootHash = tree.root(size)): WitnessLogState {
  return { size, rootHash };
}
function request(oldSize: number, size: number, checkpoint = signed(size)): AddCheckpointRequest {
  const proof = oldSize === 0 || oldSize === size ? [] : consistencyProof(tree, oldSize, size);
  return { oldSize, proof, checkpoint };
}
function expectStatus(decision: WitnessDecision, status: number): void {
  expect(decision.status, 'reason' in decision ? decision.reason : decision.body).toBe(status);
}

describe('the add-checkpoint body', () => {
  it('parses the spec example', () => {
    const checkpoint = noteVectors.checkpoints[0]?.note as string;
    const body = `old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\n${checkpoint}`;
    const parsed = parseAddCheckpointRequest(utf8(body));
    expect(parsed.oldSize).toBe(20852014);
    expect(parsed.proof.map((h) => toBase64(h, true))[3]).toBe('/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=');
    expect(parsed.checkpoint).toBe(checkpoint);
    expect(encodeAddCheckpointRequest(parsed)).toBe(body);
    expect(requestOrigin(parsed)).toBe('example.com/behind-the-sofa');
  });

  it('round-trips with no proof lines (old 0)', () => {
    const body = encodeAddCheckpointRequest(request(0, 7));
    expect(body.startsWith('old 0\n\n')).toBe(true);
    expect(parseAddCheckpointRequest(body)).toEqual(request(0, 7));
  });

  const hash = toBase64(tree.root(3), true);
  const checkpoint = signed(7);
  const malformed: [string, string | Uint8Array][] = [
    ['no empty line', `old 0\n${checkpoint.replace('\n\n', '\n')}`.replace(/\n\n/g, '\n')],
    ['a leading zero', `old 03\n\n${checkpoint}`],
    ['a negative size', `old -1\n\n${checkpoint}`],
    ['no old line', `\n${checkpoint}`],
    ['"old" without a space', `old3\n\n${checkpoint}`],
    ['two spaces', `old  3\n\n${checkpoint}`],
    ['a 31-byte proof hash', `old 3\n${toBase64(new Uint8Array(31), true)}\n\n${checkpoint}`],
    ['unpadded base64', `old 3\n${hash.replace(/=$/, '')}\n\n${checkpoint}`],
    ['64 proof lines', `old 3\n${`${hash}\n`.repeat(64)}\n${checkpoint}`],
    ['no checkpoint', 'old 3\n\n'],
    ['invalid UTF-8', Uint8Array.of(...utf8('old 3\n\n'), 0xff)],
  ];
  it.each(malformed)('refuses %s', (_, body) => {
    expectLatchkeyError(() => parseAddCheckpointRequest(body), 'LK_LOG_WITNESS_REQUEST_MALFORMED');
    expectStatus(decideAddCheckpoint(undefined, body, log, cosigner), 400);
  });

  it('takes 63 proof lines', () => {
    expect(parseAddCheckpointRequest(`old 3\n${`${hash}\n`.repeat(63)}\n${checkpoint}`).proof).toHaveLength(63);
  });
});

describe("the witness's decision", () => {
  it('cosigns a first checkpoint (old 0, no proof), with a line that verifies and is dated now', () => {
    const decision = decideAddCheckpoint(undefined, encodeAddCheckpointRequest(request(0, 10)), log, cosigner);
    if (decision.status !== 200) throw new Error(`expected 200, got ${decision.status}`);
    expect(decision.newState).toEqual(state(10));
    const opened = openNote(signed(10) + decision.body, [...log.verifiers, cosignerKey]);
    expect(opened.verified).toHaveLength(2);
    expect(cosignerKey.timeOf(opened.verified[1]?.signature as Uint8Array)).toBe(now);
  });

  it('cosigns a consistent larger checkpoint, and the same one again', () => {
    expectStatus(decideAddCheckpoint(state(10), request(10, 30), log, cosigner), 200);
    expectStatus(decideAddCheckpoint(state(10), request(10, 10), log, cosigner), 200);
  });

  it('names each refusal with its LK_* code, so an HTTP adapter never reads the reason text', () => {
    const codeOf = (decision: WitnessDecision) => ('code' in decision ? decision.code : undefined);
    const other = signed(10, tree.root(10), logSigner, 'other.example/log');
    expect(codeOf(decideAddCheckpoint(undefined, request(0, 10, other), log, cosigner))).toBe(
      'LK_LOG_WITNESS_UNKNOWN_LOG',
    );
    const byOther = signed(10, tree.root(10), ed25519NoteSigner(origin, testSeed('forger')));
    expect(codeOf(decideAddCheckpoint(undefined, request(0, 10, byOther), log, cosigner))).toBe(
      'LK_LOG_NOTE_UNVERIFIED',
    );
    const above = { oldSize: 20, proof: [], checkpoint: signed(10) };
    expect(codeOf(decideAddCheckpoint(state(20), above, log, cosigner))).toBe('LK_LOG_WITNESS_OLD_SIZE_TOO_LARGE');
    const sameSizeOtherRoot = request(10, 10, signed(10, tree.root(11)));
    expect(codeOf(decideAddCheckpoint(state(10), sameSizeOtherRoot, log, cosigner))).toBe(
      'LK_LOG_WITNESS_INCONSISTENT',
    );
    expect(codeOf(decideAddCheckpoint(undefined, 'old 0\n\nx', log, cosigner))).toBe('LK_LOG_NOTE_MALFORMED');
  });

  it('404 for a log it does not witness', () => {
    const other = signed(10, tree.root(10), logSigner, 'other.example/log');
    expectStatus(decideAddCheckpoint(undefined, request(0, 10, other), log, cosigner), 404);
  });

  it('403 without a signature of the log key, or with one that fails', () => {
    const byOther = signed(10, tree.root(10), ed25519NoteSigner(origin, testSeed('forger')));
    expectStatus(decideAddCheckpoint(undefined, request(0, 10, byOther), log, cosigner), 403);
    const altered = signed(10).replace('\n10\n', '\n11\n');
    expectStatus(decideAddCheckpoint(undefined, request(0, 11, altered), log, cosigner), 403);
  });

  it('400 when the old size is above the checkpoint size', () => {
    expectStatus(
      decideAddCheckpoint(state(30), { oldSize: 30, proof: [], checkpoint: signed(10) }, log, cosigner),
      400,
    );
  });

  it('409 with the size it holds when the old size is not what it last cosigned', () => {
    const decision = decideAddCheckpoint(state(30), request(10, 40), log, cosigner);
    expect(decision).toEqual({
      status: 409,
      code: 'LK_LOG_WITNESS_CONFLICT',
      body: '30\n',
      contentType: TLOG_SIZE_CONTENT_TYPE,
    });
    expect(TLOG_SIZE_CONTENT_TYPE).toBe('text/x.tlog.size');
    // "old 0" learns it.
    expect(decideAddCheckpoint(state(30), request(0, 40), log, cosigner)).toMatchObject({ status: 409, body: '30\n' });
  });

  it('422 for a checkpoint not consistent with the one it cosigned (a rewritten history)', () => {
    const rewritten = sampleEntries(50);
    rewritten[4] = utf8('rewritten');
    const fork = new MemoryTree(rewritten.map(leafHash));
    const forked = { oldSize: 10, proof: consistencyProof(fork, 10, 30), checkpoint: signed(30, fork.root(30)) };
    expectStatus(decideAddCheckpoint(state(10), forked, log, cosigner), 422);
    // The honest proof does not help the forked root either.
    const mixed = { ...forked, proof: consistencyProof(tree, 10, 30) };
    expectStatus(decideAddCheckpoint(state(10), mixed, log, cosigner), 422);
  });

  it('422 for a wrong proof, a proof from size 0, equal sizes with another root, a size-0 tree with a root', () => {
    const flipped = request(10, 30);
    const bad = flipped.proof.map((h) => h.slice());
    const first = bad[0] as Uint8Array;
    first[0] = (first[0] as number) ^ 1;
    expectStatus(decideAddCheckpoint(state(10), { ...flipped, proof: bad }, log, cosigner), 422);
    expectStatus(decideAddCheckpoint(state(10), { ...flipped, proof: flipped.proof.slice(1) }, log, cosigner), 422);
    const fromZero = { oldSize: 0, proof: [tree.root(1)], checkpoint: signed(10) };
    expectStatus(decideAddCheckpoint(undefined, fromZero, log, cosigner), 422);
    expectStatus(decideAddCheckpoint(state(10), request(10, 10, signed(10, tree.root(11))), log, cosigner), 422);
    expectStatus(decideAddCheckpoint(undefined, request(0, 0, signed(0, tree.root(1))), log, cosigner), 422);
    expectStatus(decideAddCheckpoint(undefined, request(0, 0, signed(0, emptyTreeRoot())), log, cosigner), 200);
  });

  it('never rolls back: after cosigning 30, a replayed request for 10 gets 409 or 400, never a cosignature', () => {
    let held: WitnessLogState | undefined;
    for (const [oldSize, size] of [
      [0, 10],
      [10, 30],
    ] as const) {
      const decision = decideAddCheckpoint(held, request(oldSize, size), log, cosigner);
      if (decision.status !== 200) throw new Error(`expected 200, got ${decision.status}`);
      held = decision.newState;
    }
    expect(held).toEqual(state(30));
    expectStatus(decideAddCheckpoint(held, request(0, 10), log, cosigner), 409);
    expectStatus(decideAddCheckpoint(held, { oldSize: 30, proof: [], checkpoint: signed(10) }, log, cosigner), 400);
  });
});
