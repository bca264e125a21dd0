import { LatchkeyError } from '../errors.js';
import { HASH_SIZE } from './merkle-tree.js';
import { decodeNoteBase64, encodeNoteBase64 } from './note-base64.js';
import { verifyConsistencyProof } from './proofs.js';
import { type Note, type NoteSigner, type NoteVerifier, type OpenedNote, openNote, signNote } from './signed-note.js';

/**
 * C2SP tlog-checkpoint v1.0.0: the note text a log signs to commit to a tree. Three lines (origin, size
 * in decimal, base64 of the RFC 6962 root), then optional extension lines, each ending in "\n".
 */

/** A log's signed statement of its tree: which log, how many leaves, which root. */
export interface Checkpoint {
  /** The log's unique name, by convention a schema-less URL (the key name should equal it). */
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  /** Extra non-empty lines after the root (NOT RECOMMENDED by the spec; kept and signed as they are). */
  readonly extensions: readonly string[];
}

/** A checkpoint whose note opened with a trusted key. */
export interface OpenedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The exact note text (what cosignatures sign). */
  readonly text: string;
  readonly note: OpenedNote;
}

function malformed(why: string): LatchkeyError {
  return new LatchkeyError('LK_LOG_CHECKPOINT_MALFORMED', `Not a well-formed checkpoint: ${why}.`);
}

/** Parses a tree size: ASCII decimal with no leading zero (but "0"), below 2^53. */
export function parseTreeSize(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) return undefined;
  const size = Number(text);
  return Number.isSafeInteger(size) ? size : undefined;
}

/** Parses a checkpoint's note text (without signatures); throws `LK_LOG_CHECKPOINT_MALFORMED`. */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw malformed('the text does not end in a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw malformed('it needs an origin, a size and a root hash line');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw malformed('the origin line is empty');
  const size = parseTreeSize(sizeLine);
  if (size === undefined) throw malformed('the size is not a decimal below 2^53 without leading zeros');
  const rootHash = decodeNoteBase64(rootLine);
  if (rootHash === undefined || rootHash.length !== HASH_SIZE) {
    throw malformed(`the root is not canonical base64 of ${HASH_SIZE} bytes`);
  }
  if (extensions.some((line) => line.length === 0)) throw malformed('an extension line is empty');
  return { origin, size, rootHash, extensions };
}

/** The checkpoint's note text. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, rootHash, extensions } = checkpoint;
  if (origin.length === 0 || origin.includes('\n')) throw malformed('the origin must be one non-empty line');
  if (!Number.isSafeInteger(size) || size < 0) throw malformed('the size must be a whole number below 2^53');
  if (rootHash.length !== HASH_SIZE) throw malformed(`the root hash must be ${HASH_SIZE} bytes`);
  if (extensions.some((line) => line.length === 0 || line.includes('\n'))) {
    throw malformed('each extension must be one non-empty line');
  }
  return [origin, String(size), encodeNoteBase64(rootHash), ...extensions].map((line) => `${line}\n`).join('');
}

/** Formats and signs a checkpoint: the log's signed note. */
export function signCheckpoint(checkpoint: Checkpoint, signers: readonly NoteSigner[]): string {
  return signNote(formatCheckpoint(checkpoint), signers);
}

/**
 * Opens a signed checkpoint of the log named `origin` with the log's keys (and any others the caller
 * trusts): the note rules of {@link openNote}, then the checkpoint's syntax, then the origin, so that a
 * checkpoint of another log signed by a shared key is refused with `LK_LOG_ORIGIN_MISMATCH`.
 */
export function openCheckpoint(
  message: string | Uint8Array | Note,
  log: { origin: string; verifiers: readonly NoteVerifier[] },
): OpenedCheckpoint {
  const note = openNote(message, log.verifiers);
  const checkpoint = parseCheckpoint(note.text);
  if (checkpoint.origin !== log.origin) {
    throw new LatchkeyError(
      'LK_LOG_ORIGIN_MISMATCH',
      `The checkpoint is for the log "${checkpoint.origin}", not "${log.origin}".`,
    );
  }
  return { checkpoint, text: note.text, note };
}

/** The size and root of a verified tree, all a client needs to keep of its last checkpoint. */
export interface TreeHead {
  readonly size: number;
  readonly rootHash: Uint8Array;
}

/**
 * Checks that `next` extends `trusted`, the last tree this client verified (issue 10, "Clients verify,
 * always"): a smaller tree is `LK_REGISTRY_ROLLBACK`; the same size with another root is
 * `LK_REGISTRY_FORK` (two signed checkpoints that prove the log lied); a larger one needs a consistency
 * proof (`LK_REGISTRY_BAD_PROOF`). The empty tree is a prefix of every tree, so needs no proof.
 */
export function verifyTreeExtends(trusted: TreeHead, next: TreeHead, proof: readonly Uint8Array[]): void {
  if (next.size < trusted.size) {
    throw new LatchkeyError(
      'LK_REGISTRY_ROLLBACK',
      `The log shows ${next.size} entries after this client verified ${trusted.size}: it rolled back.`,
    );
  }
  if (next.size === trusted.size && !sameBytes(next.rootHash, trusted.rootHash)) {
    throw new LatchkeyError('LK_REGISTRY_FORK', `The log signed two different trees of ${next.size} entries.`);
  }
  if (trusted.size === 0 || next.size === trusted.size) {
    if (proof.length !== 0) {
      throw new LatchkeyError('LK_REGISTRY_BAD_PROOF', 'No consistency proof is due here, yet one was sent.');
    }
    return;
  }
  verifyConsistencyProof({
    size1: trusted.size,
    size2: next.size,
    root1: trusted.rootHash,
    root2: next.rootHash,
    proof,
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
