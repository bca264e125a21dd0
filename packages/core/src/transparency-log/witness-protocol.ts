import { fromUtf8 } from '../encoding.js';
import { type ErrorCode, LatchkeyError } from '../errors.js';
import { type Checkpoint, parseCheckpoint, parseTreeSize } from './checkpoint.js';
import { cosignatureLine } from './cosignature.js';
import { emptyTreeRoot, HASH_SIZE } from './merkle-tree.js';
import { decodeNoteBase64, encodeNoteBase64 } from './note-base64.js';
import { verifyConsistencyProof } from './proofs.js';
import { type Note, type NoteSigner, type NoteVerifier, openNote, parseNote } from './signed-note.js';

/**
 * C2SP tlog-witness v1.0.0 `add-checkpoint` (with C2SP HEAD's 422 for equal sizes with different
 * roots): the request body, and the witness's decision as a pure function of what it last cosigned,
 * the request, the log's keys and its clock. The caller persists the new state atomically with the
 * check, before it answers (the spec's rollback race).
 */

/** At most this many proof lines (a consistency proof of a 2^63 tree is at most 63 hashes). */
export const MAX_WITNESS_PROOF_LINES = 63;

/** The `text/x.tlog.size` content type of a 409 answer. */
export const TLOG_SIZE_CONTENT_TYPE = 'text/x.tlog.size';

/** A submission: the size the log believes the witness last cosigned, the proof from it, the checkpoint. */
export interface AddCheckpointRequest {
  readonly oldSize: number;
  readonly proof: readonly Uint8Array[];
  /** The signed checkpoint note, verbatim. */
  readonly checkpoint: string;
}

function malformed(why: string): LatchkeyError {
  return new LatchkeyError('LK_LOG_WITNESS_REQUEST_MALFORMED', `Not a well-formed add-checkpoint body: ${why}.`);
}

/** The request body: `old <N>\n`, one base64 hash per line, an empty line, the signed checkpoint. */
export function encodeAddCheckpointRequest(request: AddCheckpointRequest): string {
  if (!Number.isSafeInteger(request.oldSize) || request.oldSize < 0) throw malformed('the old size is not a size');
  if (request.proof.length > MAX_WITNESS_PROOF_LINES) throw malformed('more than 63 proof lines');
  if (request.proof.some((hash) => hash.length !== HASH_SIZE)) throw malformed('a proof hash is not 32 bytes');
  const proofLines = request.proof.map((hash) => `${encodeNoteBase64(hash)}\n`).join('');
  return `old ${request.oldSize}\n${proofLines}\n${request.checkpoint}`;
}

/** Parses a request body; throws `LK_LOG_WITNESS_REQUEST_MALFORMED` (the witness answers 400). */
export function parseAddCheckpointRequest(body: string | Uint8Array): AddCheckpointRequest {
  let text: string;
  try {
    text = typeof body === 'string' ? body : fromUtf8(body);
  } catch {
    throw malformed('it is not UTF-8');
  }
  const blank = text.indexOf('\n\n');
  if (blank < 0) throw malformed('there is no empty line before the checkpoint');
  const [oldLine, ...proofLines] = text.slice(0, blank).split('\n') as [string, ...string[]];
  const oldMatch = /^old (.*)$/.exec(oldLine);
  const oldSize = oldMatch === null ? undefined : parseTreeSize(oldMatch[1] as string);
  if (oldSize === undefined) throw malformed('the first line is not "old <decimal size>"');
  if (proofLines.length > MAX_WITNESS_PROOF_LINES) throw malformed('more than 63 proof lines');
  const proof = proofLines.map((line) => {
    const hash = decodeNoteBase64(line);
    if (hash === undefined || hash.length !== HASH_SIZE)
      throw malformed('a proof line is not base64 of a 32-byte hash');
    return hash;
  });
  const checkpoint = text.slice(blank + 2);
  if (checkpoint.length === 0) throw malformed('the checkpoint is missing');
  return { oldSize, proof, checkpoint };
}

/** The origin a request's checkpoint names, read before anything is verified, to look up its state. */
export function requestOrigin(request: AddCheckpointRequest): string | undefined {
  try {
    return parseCheckpoint(parseNote(request.checkpoint).text).origin;
  } catch {
    return undefined;
  }
}

/** What the witness last cosigned for a log: size 0 and the empty root if never. */
export interface WitnessLogState {
  readonly size: number;
  readonly rootHash: Uint8Array;
}

/** The state of a log the witness never cosigned. */
export function initialWitnessState(): WitnessLogState {
  return { size: 0, rootHash: emptyTreeRoot() };
}

/** A log the witness vouches for: its origin and the keys its checkpoints must be signed with. */
export interface TrustedLog {
  readonly origin: string;
  readonly verifiers: readonly NoteVerifier[];
}

/**
 * The witness's answer: a cosignature and the state to persist, or a refusal with its status and the
 * `LK_*` code that says which rule refused it (so an HTTP adapter never matches on the reason's text).
 */
export type WitnessDecision =
  | { readonly status: 200; readonly body: string; readonly newState: WitnessLogState; readonly checkpoint: Checkpoint }
  | {
      readonly status: 409;
      readonly code: 'LK_LOG_WITNESS_CONFLICT';
      readonly body: string;
      readonly contentType: typeof TLOG_SIZE_CONTENT_TYPE;
    }
  | { readonly status: 400 | 403 | 404 | 422; readonly code: ErrorCode; readonly reason: string };

/**
 * Decides an add-checkpoint request in the spec's order: 400 for a body or checkpoint that does not
 * parse, 404 for a log it does not witness, 403 for no valid signature from the log's keys (or a known
 * key's that fails), 400 for an old size above the new one, 409 (with the size it holds) when the old
 * size is not what it last cosigned, 422 for a bad proof, a proof from size 0, a size-0 checkpoint
 * whose root is not the empty tree's, or equal sizes with different roots. Otherwise it cosigns at
 * `cosigner`'s time and returns the state to persist before answering.
 */
export function decideAddCheckpoint(
  state: WitnessLogState | undefined,
  body: string | Uint8Array | AddCheckpointRequest,
  log: TrustedLog,
  cosigner: NoteSigner,
): WitnessDecision {
  let request: AddCheckpointRequest;
  let note: Note;
  let checkpoint: Checkpoint;
  try {
    request = typeof body === 'object' && 'oldSize' in body ? body : parseAddCheckpointRequest(body);
    note = parseNote(request.checkpoint);
    checkpoint = parseCheckpoint(note.text);
  } catch (error) {
    return refusal(400, error, 'LK_LOG_WITNESS_REQUEST_MALFORMED');
  }
  if (checkpoint.origin !== log.origin) {
    return { status: 404, code: 'LK_LOG_WITNESS_UNKNOWN_LOG', reason: `unknown log "${checkpoint.origin}"` };
  }
  try {
    openNote(note, log.verifiers);
  } catch (error) {
    return refusal(403, error, 'LK_LOG_NOTE_UNVERIFIED');
  }
  if (request.oldSize > checkpoint.size) {
    return {
      status: 400,
      code: 'LK_LOG_WITNESS_OLD_SIZE_TOO_LARGE',
      reason: `the old size ${request.oldSize} is above the checkpoint size ${checkpoint.size}`,
    };
  }
  const last = state ?? initialWitnessState();
  if (request.oldSize !== last.size) {
    return {
      status: 409,
      code: 'LK_LOG_WITNESS_CONFLICT',
      body: `${last.size}\n`,
      contentType: TLOG_SIZE_CONTENT_TYPE,
    };
  }
  const unprocessable = consistencyProblem(last, request, checkpoint);
  if (unprocessable !== undefined) return { status: 422, code: 'LK_LOG_WITNESS_INCONSISTENT', reason: unprocessable };
  return {
    status: 200,
    body: cosignatureLine(cosigner, note.text),
    newState: { size: checkpoint.size, rootHash: checkpoint.rootHash },
    checkpoint,
  };
}

/** A refusal carrying the code and message of the error that caused it (`fallback` for a foreign error). */
function refusal(status: 400 | 403, error: unknown, fallback: ErrorCode): WitnessDecision {
  if (error instanceof LatchkeyError) return { status, code: error.code, reason: error.message };
  return { status, code: fallback, reason: String(error) };
}

/** Why the checkpoint is not a consistent extension of the last cosigned tree, if it is not. */
function consistencyProblem(
  last: WitnessLogState,
  request: AddCheckpointRequest,
  checkpoint: Checkpoint,
): string | undefined {
  if (checkpoint.size === 0 && !sameBytes(checkpoint.rootHash, emptyTreeRoot())) {
    return 'a checkpoint of size 0 must carry the empty tree root';
  }
  if (request.oldSize === 0) return request.proof.length === 0 ? undefined : 'no proof is due from size 0';
  if (request.oldSize === checkpoint.size && !sameBytes(last.rootHash, checkpoint.rootHash)) {
    return 'the checkpoint has the size last cosigned but another root';
  }
  try {
    verifyConsistencyProof({
      size1: request.oldSize,
      size2: checkpoint.size,
      root1: last.rootHash,
      root2: checkpoint.rootHash,
      proof: request.proof,
    });
    return undefined;
  } catch (error) {
    return error instanceof LatchkeyError ? error.message : 'the consistency proof does not verify';
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
