import {
  checkWitnessPolicy,
  cosignatureLine,
  cosignatureSigner,
  cosignatureTime,
  cosignatureVerifier,
  cosignedMessage,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatCosignatureVerifierKey,
  formatKeyId,
  fromBase64,
  leafHash,
  MemoryTree,
  noteKeyId,
  openNote,
  parseCheckpoint,
  parseCosignatureVerifierKey,
  parseNote,
  signCheckpoint,
  signNote,
  utf8,
  type WitnessPolicy,
} from '@latchkey/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from '../vector-files.js';
import { noteVectors, testSeed } from './note-vectors.js';
import { sampleEntries } from './rfc6962-reference.js';

const origin = 'latchkey.example/log';
const log = ed25519NoteSigner(origin, testSeed('log'));
const logKey = ed25519NoteVerifier(origin, ed25519.getPublicKey(testSeed('log')));
const tree = new MemoryTree(sampleEntries(9).map(leafHash));
const checkpoint = signCheckpoint({ origin, size: 9, rootHash: tree.root(), extensions: [] }, [log]);
const checkpointText = parseNote(checkpoint).text;
const witness = (n: number) => ({
  signer: (time: number) => cosignatureSigner(`w${n}.example`, testSeed(`w${n}`), time),
  verifier: cosignatureVerifier(`w${n}.example`, ed25519.getPublicKey(testSeed(`w${n}`))),
});
const [w1, w2, w3] = [witness(1), witness(2), witness(3)];
const now = 1_800_000_000;

/** The checkpoint with the witnesses' lines appended, as a client receives it. */
function cosigned(...lines: string[]): string {
  return checkpoint + lines.join('');
}

describe('tlog-cosignature/v1 vectors', () => {
  it.each(noteVectors.cosignerKeys)('$name parses, with its id', (v) => {
    const verifier = parseCosignatureVerifierKey(v.vkey);
    expect(verifier.name).toBe(v.keyName);
    expect(formatKeyId(verifier.keyId)).toBe(v.keyIdHex);
  });

  it.each(noteVectors.cosignatureTimes)('$name carries time $time', (v) => {
    expect(cosignatureTime(fromBase64(v.signatureBase64).subarray(4))).toBe(v.time);
  });

  it.each(noteVectors.checkpoints)('the signed message of $name is the spec example', (v) => {
    const text = parseNote(v.note).text;
    expect(new TextDecoder().decode(cosignedMessage(text, 1679315147))).toBe(v.cosignedMessage);
  });
});

describe('cosigning and verifying', () => {
  it('the key id hashes in type 0x04, not the note type 0x01', () => {
    const publicKey = ed25519.getPublicKey(testSeed('w1'));
    expect(w1.verifier.keyId).toBe(noteKeyId('w1.example', 4, publicKey));
    expect(w1.verifier.keyId).not.toBe(noteKeyId('w1.example', 1, publicKey));
    expect(parseCosignatureVerifierKey(formatCosignatureVerifierKey('w1.example', publicKey)).keyId).toBe(
      w1.verifier.keyId,
    );
  });

  it('a line is base64(id || u64 time || Ed25519 over "cosignature/v1\\ntime <t>\\n" + text)', () => {
    const line = cosignatureLine(w1.signer(now), checkpointText);
    const [signature] = parseNote(cosigned(line)).signatures.slice(-1);
    const bytes = signature?.signature as Uint8Array;
    expect(bytes).toHaveLength(72);
    expect(cosignatureTime(bytes)).toBe(now);
    const publicKey = ed25519.getPublicKey(testSeed('w1'));
    expect(ed25519.verify(bytes.subarray(8), cosignedMessage(checkpointText, now), publicKey)).toBe(true);
    // A client may verify the cosigned checkpoint as a note with log and witness keys together.
    const opened = openNote(cosigned(line), [logKey, w1.verifier]);
    expect(opened.verified).toHaveLength(2);
  });

  it('a cosignature does not verify over another checkpoint, another time, or as a note signature', () => {
    const bytes = w1.signer(now).sign(utf8(checkpointText));
    expect(w1.verifier.verify(utf8(checkpointText), bytes)).toBe(true);
    expect(w1.verifier.verify(utf8(checkpointText.replace('\n9\n', '\n10\n')), bytes)).toBe(false);
    const retimed = bytes.slice();
    retimed[7] = (retimed[7] as number) ^ 1;
    expect(w1.verifier.verify(utf8(checkpointText), retimed)).toBe(false);
    expect(w1.verifier.verify(utf8(checkpointText), bytes.subarray(0, 71))).toBe(false);
    const noteSigner = ed25519NoteSigner('w1.example', testSeed('w1'));
    expect(
      w1.verifier.verify(
        utf8(checkpointText),
        Uint8Array.of(...bytes.subarray(0, 8), ...noteSigner.sign(utf8(checkpointText))),
      ),
    ).toBe(false);
  });

  it('a witness never signs with time 0 or past 2^53 - 1', () => {
    expectLatchkeyError(() => w1.signer(0), 'LK_LOG_COSIGNATURE_INVALID');
    expectLatchkeyError(() => w1.signer(2 ** 53), 'LK_LOG_COSIGNATURE_INVALID');
    expectLatchkeyError(() => cosignatureTime(new Uint8Array(71)), 'LK_LOG_COSIGNATURE_INVALID');
    const far = new Uint8Array(72);
    far[0] = 0x7f;
    expectLatchkeyError(() => cosignatureTime(far), 'LK_LOG_COSIGNATURE_INVALID');
  });

  it('a cosigner vkey must be type 4 with a 32-byte key', () => {
    const noteVkey = noteVectors.verify[0]?.vkey as string;
    expectLatchkeyError(() => parseCosignatureVerifierKey(noteVkey), 'LK_LOG_KEY_INVALID');
  });
});

describe('a witness policy: k of these witnesses, no older than T', () => {
  const policy: WitnessPolicy = { witnesses: [w1.verifier, w2.verifier, w3.verifier], quorum: 2, maxAgeSeconds: 3600 };
  const line = (w: typeof w1, time: number) => cosignatureLine(w.signer(time), checkpointText);

  it('is met by two fresh cosignatures, unknown lines ignored', () => {
    const stranger = cosignatureLine(cosignatureSigner('stranger.example', testSeed('s'), now), checkpointText);
    const note = parseNote(cosigned(stranger, line(w1, now - 10), line(w3, now - 3599)));
    const met = checkWitnessPolicy(note, policy, now);
    expect(met.map((w) => w.name).sort()).toEqual(['w1.example', 'w3.example']);
    expect(met.find((w) => w.name === 'w1.example')?.time).toBe(now - 10);
  });

  it('is not met by one witness, however many lines it adds', () => {
    const note = parseNote(cosigned(line(w1, now), line(w1, now - 1)));
    expectLatchkeyError(() => checkWitnessPolicy(note, policy, now), 'LK_LOG_WITNESS_POLICY_UNMET');
  });

  it('does not count a stale cosignature, nor one from the future', () => {
    const stale = parseNote(cosigned(line(w1, now), line(w2, now - 3601)));
    expectLatchkeyError(() => checkWitnessPolicy(stale, policy, now), 'LK_LOG_WITNESS_POLICY_UNMET');
    const future = parseNote(cosigned(line(w1, now), line(w2, now + 301)));
    expectLatchkeyError(() => checkWitnessPolicy(future, policy, now), 'LK_LOG_WITNESS_POLICY_UNMET');
  });

  it('rejects the checkpoint outright when a required witness line does not verify', () => {
    // w2 cosigned a different checkpoint (a split view): its line fails on this one.
    const otherText = parseNote(
      signCheckpoint({ ...parseCheckpoint(checkpointText), size: 8, rootHash: tree.root(8) }, [log]),
    ).text;
    const forged = cosignatureLine(w2.signer(now), otherText);
    const note = parseNote(cosigned(line(w1, now), line(w3, now), forged));
    expectLatchkeyError(() => checkWitnessPolicy(note, policy, now), 'LK_LOG_NOTE_BAD_SIGNATURE');
  });

  it('is not met by the log signing as if it were a witness', () => {
    const asWitness = parseNote(signNote(parseNote(checkpoint), [ed25519NoteSigner('w1.example', testSeed('w1'))]));
    expectLatchkeyError(() => checkWitnessPolicy(asWitness, policy, now), 'LK_LOG_WITNESS_POLICY_UNMET');
  });
});
