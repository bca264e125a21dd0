import { formatSignerKey, fromBase64, type MasterKey, toBase64 } from '@latchkey/core';
import type { ServerConfig } from '../../config.js';
import { loadOrCreateServerSecret } from '../../server-secrets.js';
import type { Store } from '../../store/store.js';
import { LOG_PREFIX } from './routes.js';
import { Sequencer } from './sequencer.js';

export { LOG_PREFIX, transparencyLogRoutes } from './routes.js';
export { MAX_ENTRY_BYTES } from './sequencer.js';

/** The server secret holding the log's Ed25519 seed: made by the first node, shared by all. */
const LOG_KEY_SECRET = 'transparency_log_key';

/** Batching (issue 10: "sequenced in small batches, say every 100 ms"). */
export const DEFAULT_BATCH_DELAY_MS = 100;
export const DEFAULT_MAX_BATCH = 1024;

/**
 * The server's one transparency log, as other modules use it (the registry appends its links here).
 */
export interface TransparencyLog {
  /** The log's name: first line of its checkpoints, name of its key. */
  readonly origin: string;
  /** The note verifier key (`<origin>+<id>+<key>`) clients pin to open checkpoints. */
  readonly verifierKey: string;
  /**
   * Appends an entry (at most 65,535 bytes). Resolves with its index only once the entry is committed
   * with a signed checkpoint that covers it; rejects if its batch could not be written (then it is not
   * in the log).
   */
  append(entry: Uint8Array): Promise<{ index: number }>;
  /** Sequences what is queued, then refuses appends (`LK_UNAVAILABLE`). */
  close(): Promise<void>;
}

/** The log's origin unless configured: where its tiles are served, without the scheme (tlog-tiles). */
export function defaultLogOrigin(config: Pick<ServerConfig, 'publicUrl' | 'host' | 'port'>): string {
  const base = config.publicUrl ?? `http://${config.host}:${config.port}`;
  return `${base.replace(/^https?:\/\//, '').replace(/\/$/, '')}${LOG_PREFIX}`;
}

export interface OpenLogOptions {
  store: Store;
  masterKey: MasterKey;
  /** LATCHKEY_LOG_ORIGIN, if set: then the log must have it. */
  origin: string | undefined;
  /** The origin a new log takes when none is configured (an existing log keeps its own). */
  defaultOrigin: string;
  random(length: number): Uint8Array;
  now(): number;
  batchDelayMs?: number;
  maxBatch?: number;
  onError(error: unknown): void;
}

/** Loads (or makes, once for all nodes) the log's key, checks the stored tree, and starts the sequencer. */
export async function openTransparencyLog(options: OpenLogOptions): Promise<TransparencyLog & { size: number }> {
  const { store, masterKey, random } = options;
  const seedText = await loadOrCreateServerSecret(store, masterKey, LOG_KEY_SECRET, () => toBase64(random(32)), random);
  const seed = fromBase64(seedText, LOG_KEY_SECRET);
  const sequencer = new Sequencer({
    store,
    origin: options.origin ?? options.defaultOrigin,
    configured: options.origin !== undefined,
    seed,
    now: options.now,
    batchDelayMs: options.batchDelayMs ?? DEFAULT_BATCH_DELAY_MS,
    maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH,
    onError: options.onError,
  });
  const { size } = await sequencer.start();
  const { origin } = sequencer;
  return {
    origin,
    verifierKey: formatSignerKey(origin, seed).vkey,
    size,
    append: (entry) => sequencer.append(entry),
    close: () => sequencer.close(),
  };
}
