import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { WitnessLogState } from '@latchkey/core';
import SqliteDatabase from 'better-sqlite3';

/** The witness's state file in its data directory. */
export const WITNESS_STATE_FILE = 'witness.db';

interface StateRow {
  size: number;
  root_hash: Uint8Array;
}

/**
 * What the witness last cosigned, per log origin, in a SQLite file. tlog-witness: "checking the old
 * size against the latest checkpoint and persisting the new checkpoint must be performed atomically",
 * and persisted before the reply. Every write is a compare-and-set on the state the decision was made
 * from, inside an IMMEDIATE transaction, with `synchronous = FULL` so a committed cosignature survives
 * a power cut, not just a crash; two witnesses sharing the file cannot both advance one log.
 */
export class WitnessStateStore {
  readonly #db: SqliteDatabase.Database;
  readonly #select: SqliteDatabase.Statement<[string], StateRow>;
  readonly #insert: SqliteDatabase.Statement<[string, number, Uint8Array, string, number]>;
  readonly #update: SqliteDatabase.Statement<[number, Uint8Array, string, number, string, number, Uint8Array]>;

  constructor(dataDir: string) {
    const file = join(dataDir, WITNESS_STATE_FILE);
    keepOwnerOnly(dataDir, file);
    this.#db = new SqliteDatabase(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS witness_logs (
      origin TEXT PRIMARY KEY,
      size INTEGER NOT NULL CHECK (size >= 0),
      root_hash BLOB NOT NULL CHECK (length(root_hash) = 32),
      checkpoint TEXT NOT NULL,
      cosigned_at INTEGER NOT NULL
    ) STRICT`);
    this.#select = this.#db.prepare('SELECT size, root_hash FROM witness_logs WHERE origin = ?');
    this.#insert = this.#db.prepare(
      `INSERT INTO witness_logs (origin, size, root_hash, checkpoint, cosigned_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (origin) DO NOTHING`,
    );
    this.#update = this.#db.prepare(
      `UPDATE witness_logs SET size = ?, root_hash = ?, checkpoint = ?, cosigned_at = ?
       WHERE origin = ? AND size = ? AND root_hash = ?`,
    );
  }

  /** The last cosigned state of a log, or undefined if the witness never cosigned it. */
  read(origin: string): WitnessLogState | undefined {
    const row = this.#select.get(origin);
    return row === undefined ? undefined : { size: row.size, rootHash: new Uint8Array(row.root_hash) };
  }

  /**
   * Moves a log from `from` (undefined: never cosigned) to `to`, keeping the checkpoint's note text as
   * evidence. False, with nothing written, when the stored state is no longer `from`: another request
   * won, and the caller must decide again on the new state.
   */
  compareAndSet(
    origin: string,
    from: WitnessLogState | undefined,
    to: WitnessLogState,
    checkpointText: string,
    time: number,
  ): boolean {
    const write = this.#db.transaction(() => {
      const result =
        from === undefined
          ? this.#insert.run(origin, to.size, blob(to.rootHash), checkpointText, time)
          : this.#update.run(to.size, blob(to.rootHash), checkpointText, time, origin, from.size, blob(from.rootHash));
      return result.changes === 1;
    });
    return write.immediate();
  }

  close(): void {
    this.#db.close();
  }
}

/** better-sqlite3 binds Buffers as BLOBs. */
function blob(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The state is not secret, but it is the witness's word: owner-only, like the key. SQLite would make
 * the file 0644 less the umask and give its -wal and -shm files the main file's mode, so the main file
 * is created 0600 first.
 */
function keepOwnerOnly(dataDir: string, file: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  closeSync(openSync(file, 'a', 0o600));
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
}
