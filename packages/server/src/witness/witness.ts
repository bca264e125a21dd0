import {
  type AddCheckpointRequest,
  decideAddCheckpoint,
  LatchkeyError,
  type NoteVerifier,
  parseAddCheckpointRequest,
  parseVerifierKey,
  requestOrigin,
  type TrustedLog,
  type WitnessDecision,
} from '@latchkey/core';
import type { WitnessKey } from './witness-key.js';
import type { WitnessStateStore } from './witness-state.js';

/**
 * The logs a witness vouches for, from their note vkeys. A log's origin is its key's name (the
 * tlog-checkpoint convention); several vkeys with one name are one log whose checkpoints any of those
 * keys may sign (a key rotation). Throws `LK_LOG_KEY_INVALID` naming the vkey it could not use.
 */
export function trustedLogs(vkeys: readonly string[]): TrustedLog[] {
  const byOrigin = new Map<string, NoteVerifier[]>();
  for (const vkey of vkeys) {
    let verifier: NoteVerifier;
    try {
      verifier = parseVerifierKey(vkey);
    } catch (error) {
      if (!(error instanceof LatchkeyError)) throw error;
      throw new LatchkeyError('LK_LOG_KEY_INVALID', `${JSON.stringify(vkey)}: ${error.message}`, { vkey });
    }
    const verifiers = byOrigin.get(verifier.name) ?? [];
    if (!verifiers.some((known) => known.keyId === verifier.keyId)) verifiers.push(verifier);
    byOrigin.set(verifier.name, verifiers);
  }
  return [...byOrigin].map(([origin, verifiers]) => ({ origin, verifiers }));
}

/**
 * Stands in for every log the witness does not know: no checkpoint can carry a newline in its origin
 * line, so the core decision answers it 404 (or 400, when the checkpoint does not even parse).
 */
const UNKNOWN_LOG: TrustedLog = { origin: '\n', verifiers: [] };

/** How often a request decides again after losing a compare-and-set to another one (then 409 or 200). */
const MAX_ATTEMPTS = 5;

/** The witness: core's add-checkpoint decision over persisted state, cosigning with its key. */
export class Witness {
  readonly #logs: ReadonlyMap<string, TrustedLog>;

  constructor(
    readonly key: WitnessKey,
    logs: readonly TrustedLog[],
    private readonly store: WitnessStateStore,
    private readonly now: () => number = Date.now,
  ) {
    this.#logs = new Map(logs.map((log) => [log.origin, log]));
  }

  /**
   * Decides one add-checkpoint body. A cosignature is returned only after the new state is committed,
   * and only if the state the decision was made on is still the stored one; otherwise the request is
   * decided again on what the winner stored (usually a 409 naming the new size).
   */
  addCheckpoint(body: Uint8Array): WitnessDecision {
    let request: AddCheckpointRequest;
    try {
      request = parseAddCheckpointRequest(body);
    } catch {
      return decideAddCheckpoint(undefined, body, UNKNOWN_LOG, this.key.signerAt(this.#seconds()));
    }
    const origin = requestOrigin(request);
    const log = (origin === undefined ? undefined : this.#logs.get(origin)) ?? UNKNOWN_LOG;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = this.store.read(log.origin);
      const time = this.#seconds();
      const decision = decideAddCheckpoint(state, request, log, this.key.signerAt(time));
      if (decision.status !== 200) return decision;
      const text = request.checkpoint.slice(0, request.checkpoint.lastIndexOf('\n\n') + 1);
      if (this.store.compareAndSet(log.origin, state, decision.newState, text, time)) return decision;
    }
    throw new LatchkeyError('LK_UNAVAILABLE', 'The witness state kept changing under this request; retry.');
  }

  /** Now in whole POSIX seconds; never 0, which a cosignature may not carry. */
  #seconds(): number {
    return Math.max(1, Math.floor(this.now() / 1000));
  }
}
