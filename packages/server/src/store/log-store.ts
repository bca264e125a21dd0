import { type Kysely, sql, type Transaction } from 'kysely';
import type { Dialect } from './migrate.js';
import type { Database, LogCheckpointRow, LogLeafRow, LogTileRow } from './schema.js';

type Executor = Kysely<Database> | Transaction<Database>;

/**
 * The PostgreSQL advisory lock that makes one sequencer at a time across nodes: the first 64 bits of
 * SHA-256("latchkey/transparency-log/sequencer"), fixed so that every node, of any version, takes the same.
 */
const SEQUENCER_LOCK_KEY = '1746673594509326975';

/** Rows per INSERT: well inside SQLite's 32,766 and PostgreSQL's 65,535 bound parameters. */
const INSERT_CHUNK = 256;

/**
 * Storage of the transparency log (issue 10): leaves, full tiles and checkpoints. Same SQL on SQLite
 * and PostgreSQL. The sequencer writes only inside a transaction that holds {@link lockSequencer}; the
 * readers need no lock, since every committed row belongs to a committed checkpoint.
 */
export interface LogStore {
  /**
   * Inside a transaction, waits until no other sequencer holds the log and holds it until the
   * transaction ends (PostgreSQL: a transaction-scoped advisory lock, released even if the node dies).
   * SQLite needs none: its transactions begin IMMEDIATE, one writer at a time.
   */
  lockSequencer(): Promise<void>;
  latestCheckpoint(): Promise<LogCheckpointRow | undefined>;
  insertCheckpoint(row: LogCheckpointRow): Promise<void>;
  insertLeaves(rows: readonly LogLeafRow[]): Promise<void>;
  insertTiles(rows: readonly LogTileRow[]): Promise<void>;
  /** The leaf hashes of indexes [from, to), in order; fewer if the log is shorter. */
  leafHashes(from: number, to: number): Promise<Uint8Array[]>;
  /** The entries of indexes [from, to), in order; fewer if the log is shorter. */
  entries(from: number, to: number): Promise<Uint8Array[]>;
  /** A full tile's 256 hashes, if it is complete. */
  fullTile(level: number, index: number): Promise<Uint8Array | undefined>;
  /** The roots of the full tiles [from, to) of a level, in order: hashes of the level above. */
  tileRoots(level: number, from: number, to: number): Promise<Uint8Array[]>;
}

export class KyselyLogStore implements LogStore {
  constructor(
    private readonly db: Executor,
    private readonly dialect: Dialect,
  ) {}

  async lockSequencer() {
    if (this.dialect !== 'postgres') return;
    await sql`select pg_advisory_xact_lock(${SEQUENCER_LOCK_KEY}::bigint)`.execute(this.db);
  }

  latestCheckpoint() {
    return this.db.selectFrom('log_checkpoints').selectAll().orderBy('size', 'desc').limit(1).executeTakeFirst();
  }

  async insertCheckpoint(row: LogCheckpointRow) {
    await this.db.insertInto('log_checkpoints').values(row).execute();
  }

  async insertLeaves(rows: readonly LogLeafRow[]) {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await this.db
        .insertInto('log_leaves')
        .values(rows.slice(i, i + INSERT_CHUNK))
        .execute();
    }
  }

  async insertTiles(rows: readonly LogTileRow[]) {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await this.db
        .insertInto('log_tiles')
        .values(rows.slice(i, i + INSERT_CHUNK))
        .execute();
    }
  }

  async leafHashes(from: number, to: number) {
    const rows = await this.db
      .selectFrom('log_leaves')
      .select('leaf_hash')
      .where('idx', '>=', from)
      .where('idx', '<', to)
      .orderBy('idx')
      .execute();
    return rows.map((row) => row.leaf_hash);
  }

  async entries(from: number, to: number) {
    const rows = await this.db
      .selectFrom('log_leaves')
      .select('entry')
      .where('idx', '>=', from)
      .where('idx', '<', to)
      .orderBy('idx')
      .execute();
    return rows.map((row) => row.entry);
  }

  async fullTile(level: number, index: number) {
    const row = await this.db
      .selectFrom('log_tiles')
      .select('hashes')
      .where('level', '=', level)
      .where('idx', '=', index)
      .executeTakeFirst();
    return row?.hashes;
  }

  async tileRoots(level: number, from: number, to: number) {
    const rows = await this.db
      .selectFrom('log_tiles')
      .select('root')
      .where('level', '=', level)
      .where('idx', '>=', from)
      .where('idx', '<', to)
      .orderBy('idx')
      .execute();
    return rows.map((row) => row.root);
  }
}
