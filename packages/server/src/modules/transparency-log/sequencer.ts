import {
  ed25519NoteSigner,
  LatchkeyError,
  leafHash,
  type NoteSigner,
  parseCheckpoint,
  parseNote,
  signCheckpoint,
} from '@latchkey/core';
import type { LogStore } from '../../store/log-store.js';
import type { Store } from '../../store/store.js';
import {
  appendToTileEdge,
  EMPTY_TILE_EDGE,
  edgeFromPartialTiles,
  partialTileRanges,
  type TileEdge,
  tileEdgeRoot,
} from './tile-edge.js';

/** An entry bundle writes each length as a uint16 (c2sp.org/tlog-tiles), so no entry can be longer. */
export const MAX_ENTRY_BYTES = 0xffff;

export interface SequencerOptions {
  store: Store;
  /**
   * The log's name, first line of every checkpoint and the name of its key: the configured one, or
   * (`configured` false) a default that names a new log only, since an existing log keeps its own.
   */
  origin: string;
  configured: boolean;
  /** The log's Ed25519 key (32-byte seed). */
  seed: Uint8Array;
  now(): number;
  /** How long the first append of a batch waits for others to join it. */
  batchDelayMs: number;
  /** A batch this large is sequenced at once, without waiting out the delay. */
  maxBatch: number;
  onError(error: unknown): void;
}

interface Pending {
  entry: Uint8Array;
  resolve(index: number): void;
  reject(error: unknown): void;
}

/**
 * The log's sequencer (issue 10, "One log for the whole server"). Appends wait in memory a short while
 * and go in as one batch: one transaction that takes the sequencer lock, reads the newest checkpoint,
 * writes the leaves, the tiles they complete and the checkpoint signing the new tree, and commits. A
 * burst costs one tree update and one signature. An append resolves only after that commit, so an
 * acknowledged entry survives any crash; a batch that fails is failed for each of its appends, and
 * nothing of it was kept. Nodes share one database: each batch starts from what is stored, so whichever
 * node holds the lock continues the one tree, with no index used twice and none skipped.
 */
export class Sequencer {
  readonly #options: SequencerOptions;
  #origin: string;
  #signer: NoteSigner;
  /** The tree as this node last wrote or read it; checked against the newest checkpoint in every batch. */
  #state: TileEdge | undefined;
  #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** The batch being written, if any: batches of one node run one after another. */
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: SequencerOptions) {
    this.#options = options;
    this.#origin = options.origin;
    this.#signer = ed25519NoteSigner(options.origin, options.seed);
  }

  /** The log's name, as stored once the sequencer has started. */
  get origin(): string {
    return this.#origin;
  }

  /**
   * Makes sure the log has a checkpoint (the empty tree's, on first start) under this origin, and
   * that the stored hashes give the stored root. A log keeps the origin it was made with (a server
   * moved to another port or URL still serves the same log); one configured under another origin is
   * refused, since its checkpoints name it and clients would take a renamed log for another one.
   */
  async start(): Promise<{ size: number }> {
    const state = await this.#options.store.transaction(async (tx) => {
      await tx.log.lockSequencer();
      const latest = await tx.log.latestCheckpoint();
      if (latest === undefined) {
        await tx.log.insertCheckpoint(this.#checkpointRow(EMPTY_TILE_EDGE));
        return EMPTY_TILE_EDGE;
      }
      const stored = parseCheckpoint(parseNote(latest.note).text).origin;
      if (stored !== this.#origin && !this.#options.configured) this.#adoptOrigin(stored);
      if (stored !== this.#origin) {
        throw new LatchkeyError(
          'LK_CONFIG_INVALID',
          `The transparency log in this database is "${stored}", not "${this.#origin}": a log keeps ` +
            'its origin for life. Set LATCHKEY_LOG_ORIGIN to the stored one.',
          { setting: 'LATCHKEY_LOG_ORIGIN' },
        );
      }
      return this.#load(tx.log, latest);
    });
    this.#state = state;
    return { size: state.size };
  }

  #adoptOrigin(origin: string): void {
    this.#origin = origin;
    this.#signer = ed25519NoteSigner(origin, this.#options.seed);
  }

  /** Appends an entry; resolves with its index once it is committed under a signed checkpoint. */
  append(entry: Uint8Array): Promise<{ index: number }> {
    if (!(entry instanceof Uint8Array) || entry.length > MAX_ENTRY_BYTES) {
      return Promise.reject(
        new LatchkeyError('LK_LOG_ENTRY_TOO_LARGE', `A log entry is at most ${MAX_ENTRY_BYTES} bytes.`),
      );
    }
    if (this.#closed) return Promise.reject(new LatchkeyError('LK_UNAVAILABLE', 'The log is closing.'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry: entry.slice(), resolve: (index) => resolve({ index }), reject });
      if (this.#queue.length >= this.#options.maxBatch) this.#flushSoon(0);
      else this.#flushSoon(this.#options.batchDelayMs);
    });
  }

  /** Sequences what is queued and stops taking appends. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#flushSoon(0);
    await this.#running;
    while (this.#queue.length > 0) await this.#flush();
  }

  #flushSoon(delayMs: number): void {
    if (this.#timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, delayMs);
  }

  /** Takes the queue (at most one batch) and sequences it after the batch before it. */
  #flush(): Promise<void> {
    this.#running = this.#running.then(async () => {
      const batch = this.#queue.splice(0, this.#options.maxBatch);
      if (batch.length === 0) return;
      // What arrived while this batch waits or runs goes in the next one.
      if (this.#queue.length > 0)
        this.#flushSoon(this.#queue.length >= this.#options.maxBatch ? 0 : this.#options.batchDelayMs);
      try {
        const first = await this.#sequence(batch.map((p) => p.entry));
        for (const [i, p] of batch.entries()) p.resolve(first + i);
      } catch (error) {
        // The transaction rolled back: none of the batch is in the log, and the next batch reloads.
        this.#state = undefined;
        this.#options.onError(error);
        for (const p of batch) p.reject(error);
      }
    });
    return this.#running;
  }

  /** One transaction: the batch's leaves, the tiles they complete, the new checkpoint. Returns the first index. */
  async #sequence(entries: readonly Uint8Array[]): Promise<number> {
    const hashes = entries.map(leafHash);
    const next = await this.#options.store.transaction(async (tx) => {
      await tx.log.lockSequencer();
      const latest = await tx.log.latestCheckpoint();
      if (latest === undefined) throw new Error('the transparency log has no checkpoint: start() was not run');
      // Another node may have appended since this one last did: then the tree is read back from the rows.
      const state = this.#state?.size === latest.size ? this.#state : await this.#load(tx.log, latest);
      const { state: after, completed } = appendToTileEdge(state, hashes);
      await tx.log.insertLeaves(
        entries.map((entry, i) => ({ idx: state.size + i, entry, leaf_hash: hashes[i] as Uint8Array })),
      );
      await tx.log.insertTiles(
        completed.map((t) => ({ level: t.level, idx: t.index, hashes: t.hashes, root: t.root })),
      );
      await tx.log.insertCheckpoint(this.#checkpointRow(after));
      return { before: state.size, after };
    });
    this.#state = next.after;
    return next.before;
  }

  /** The tree of the newest checkpoint, from its partial tiles' stored hashes; its root must be the checkpoint's. */
  async #load(log: LogStore, latest: { size: number; root_hash: Uint8Array }): Promise<TileEdge> {
    const partial: Uint8Array[][] = [];
    for (const { level, from, to } of partialTileRanges(latest.size)) {
      const hashes = level === 0 ? await log.leafHashes(from, to) : await log.tileRoots(level - 1, from, to);
      if (hashes.length !== to - from) {
        throw new Error(`the transparency log lacks stored hashes at tile level ${level} for size ${latest.size}`);
      }
      partial[level] = hashes;
    }
    const state = edgeFromPartialTiles(latest.size, partial);
    if (!sameBytes(tileEdgeRoot(state), latest.root_hash)) {
      throw new Error(`the transparency log's stored hashes do not give the root of its checkpoint ${latest.size}`);
    }
    return state;
  }

  #checkpointRow(state: TileEdge) {
    const checkpoint = {
      origin: this.#origin,
      size: state.size,
      rootHash: tileEdgeRoot(state),
      extensions: [],
    };
    return {
      size: state.size,
      root_hash: checkpoint.rootHash,
      note: signCheckpoint(checkpoint, [this.#signer]),
      created_at: this.#options.now(),
    };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
