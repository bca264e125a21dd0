import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import {
  ed25519Verify,
  formatKeyId,
  formatSignatureLine,
  formatVerifierKey,
  isValidKeyName,
  type Note,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  noteKeyId,
  parseVerifierKeyParts,
} from './signed-note.js';

/**
 * C2SP tlog-cosignature v1.0.1, Ed25519 (signature type 0x04): a witness's statement that, as of a
 * time, this checkpoint is the largest consistent tree it has seen of that log. The signature line
 * carries base64(key ID || u64 big-endian time || 64-byte Ed25519 signature) over
 * "cosignature/v1\ntime <t>\n" followed by the checkpoint's note text.
 */

/** Signature type 0x04: an Ed25519 cosignature. Its key ID hashes in 0x04, not 0x01. */
export const NOTE_TYPE_COSIGNATURE = 0x04;

/** The largest timestamp a cosignature may carry (2^63 - 1 in the spec; 2^53 - 1 here, see below). */
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/** A note verifier for cosignatures that also reads the time a cosignature carries. */
export interface CosignatureVerifier extends NoteVerifier {
  /** The POSIX time in a cosignature's bytes (after the key ID); throws `LK_LOG_COSIGNATURE_INVALID`. */
  timeOf(signature: Uint8Array): number;
}

function invalid(why: string): LatchkeyError {
  return new LatchkeyError('LK_LOG_COSIGNATURE_INVALID', `Not a valid cosignature: ${why}.`);
}

/**
 * The bytes a v1 cosignature signs: header line, time line, then the checkpoint's note text, taken as
 * the exact bytes given (never decoded and re-encoded, which could change them).
 */
export function cosignedMessage(checkpointText: string | Uint8Array, time: number): Uint8Array {
  const text = typeof checkpointText === 'string' ? utf8(checkpointText) : checkpointText;
  return concatBytes(utf8(`cosignature/v1\ntime ${time}\n`), text);
}

/**
 * The time of a cosignature's `timestamped_signature` (8 bytes time, 64 bytes signature). Times past
 * 2^53 - 1 seconds (285 million years) are refused rather than rounded.
 */
export function cosignatureTime(signature: Uint8Array): number {
  if (signature.length !== 72) throw invalid('it is not 8 bytes of time and a 64-byte Ed25519 signature');
  const time = new DataView(signature.buffer, signature.byteOffset, 8).getBigUint64(0);
  if (time > BigInt(MAX_TIME)) throw invalid('its time is beyond 2^53 - 1 seconds');
  return Number(time);
}

/** A verifier of one witness's Ed25519 cosignatures. */
export function cosignatureVerifier(name: string, publicKey: Uint8Array): CosignatureVerifier {
  if (!isValidKeyName(name)) throw new LatchkeyError('LK_LOG_KEY_INVALID', `"${name}" is not a valid key name.`);
  if (publicKey.length !== 32) throw new LatchkeyError('LK_LOG_KEY_INVALID', 'An Ed25519 public key is 32 bytes.');
  const key = publicKey.slice();
  return {
    name,
    keyId: noteKeyId(name, NOTE_TYPE_COSIGNATURE, key),
    timeOf: cosignatureTime,
    verify(text, signature) {
      let time: number;
      try {
        time = cosignatureTime(signature);
      } catch {
        return false;
      }
      return ed25519Verify(signature.subarray(8), cosignedMessage(text, time), key);
    },
  };
}

/**
 * A signer of cosignatures at a given time (the witness's clock, passed in), from a 32-byte Ed25519
 * seed. A witness must not send a zero time (tlog-witness), so 0 is refused here.
 */
export function cosignatureSigner(name: string, seed: Uint8Array, time: number): NoteSigner {
  if (!Number.isSafeInteger(time) || time <= 0 || time > MAX_TIME) {
    throw invalid(`the time ${time} is not a whole number of seconds from 1 to 2^53 - 1`);
  }
  if (!isValidKeyName(name)) throw new LatchkeyError('LK_LOG_KEY_INVALID', `"${name}" is not a valid key name.`);
  if (seed.length !== 32) throw new LatchkeyError('LK_LOG_KEY_INVALID', 'An Ed25519 seed is 32 bytes.');
  const secret = seed.slice();
  const timeBytes = new Uint8Array(8);
  new DataView(timeBytes.buffer).setBigUint64(0, BigInt(time));
  return {
    name,
    keyId: noteKeyId(name, NOTE_TYPE_COSIGNATURE, ed25519.getPublicKey(secret)),
    sign: (text) => concatBytes(timeBytes, ed25519.sign(cosignedMessage(text, time), secret)),
  };
}

/** The signature line a witness returns for a checkpoint's note text. */
export function cosignatureLine(signer: NoteSigner, checkpointText: string): string {
  const signature = signer.sign(utf8(checkpointText));
  return formatSignatureLine({ name: signer.name, keyId: signer.keyId, signature });
}

/** Parses a cosigner vkey (type 0x04, a 32-byte Ed25519 key) into a verifier; throws `LK_LOG_KEY_INVALID`. */
export function parseCosignatureVerifierKey(vkey: string): CosignatureVerifier {
  const { name, type, publicKey } = parseVerifierKeyParts(vkey);
  if (type !== NOTE_TYPE_COSIGNATURE || publicKey.length !== 32) {
    throw new LatchkeyError('LK_LOG_KEY_INVALID', 'Not an Ed25519 cosignature key (type 4, 32 bytes).');
  }
  return cosignatureVerifier(name, publicKey);
}

/** The vkey string of a cosigner's Ed25519 public key. */
export function formatCosignatureVerifierKey(name: string, publicKey: Uint8Array): string {
  return formatVerifierKey(name, NOTE_TYPE_COSIGNATURE, publicKey);
}

/** What a client requires of a checkpoint's witnesses (issue 10: which keys, how many, how fresh). */
export interface WitnessPolicy {
  readonly witnesses: readonly CosignatureVerifier[];
  /** How many distinct witnesses must have cosigned. */
  readonly quorum: number;
  /** A cosignature older than this many seconds does not count. */
  readonly maxAgeSeconds: number;
  /** A cosignature dated further than this in the future does not count (clock skew); default 300. */
  readonly maxFutureSeconds?: number;
}

/** A witness that counted toward the policy, and when it cosigned. */
export interface WitnessCosignature {
  readonly name: string;
  readonly keyId: number;
  readonly time: number;
}

/**
 * Checks a checkpoint's cosignatures against a policy at time `now` (seconds). Lines from other keys
 * are ignored; a listed witness's line that does not verify rejects the note (signed-note: a known
 * key's failure, `LK_LOG_NOTE_BAD_SIGNATURE`); fewer than `quorum` fresh witnesses is
 * `LK_LOG_WITNESS_POLICY_UNMET`.
 */
export function checkWitnessPolicy(note: Note, policy: WitnessPolicy, now: number): WitnessCosignature[] {
  const text = utf8(note.text);
  const oldest = now - policy.maxAgeSeconds;
  const newest = now + (policy.maxFutureSeconds ?? 300);
  const counted = new Map<CosignatureVerifier, WitnessCosignature>();
  for (const signature of note.signatures) {
    const witness = policy.witnesses.find((w) => w.name === signature.name && w.keyId === signature.keyId);
    if (witness === undefined) continue;
    if (!witness.verify(text, signature.signature)) throw badCosignature(signature);
    const time = witness.timeOf(signature.signature);
    if (time < oldest || time > newest) continue;
    counted.set(witness, { name: witness.name, keyId: witness.keyId, time });
  }
  if (counted.size < policy.quorum) {
    throw new LatchkeyError(
      'LK_LOG_WITNESS_POLICY_UNMET',
      `The checkpoint has ${counted.size} fresh cosignatures from required witnesses; the policy needs ${policy.quorum}.`,
    );
  }
  return [...counted.values()];
}

function badCosignature(signature: NoteSignature): LatchkeyError {
  return new LatchkeyError(
    'LK_LOG_NOTE_BAD_SIGNATURE',
    `The cosignature of ${signature.name}+${formatKeyId(signature.keyId)} does not verify: the checkpoint was altered or the cosignature forged.`,
  );
}
