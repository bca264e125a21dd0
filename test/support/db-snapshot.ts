import SqliteDatabase from 'better-sqlite3';
import type pg from 'pg';

/** A column's value as a snapshot keeps it: BLOBs as lowercase hex, everything else as SQLite returns it. */
export type SnapshotValue = string | number | bigint | null;

/** Every user table of a database: table name → rows (column → value), in a deterministic order. */
export type DbSnapshot = Record<string, Record<string, SnapshotValue>[]>;

/** A part of a snapshot that a test expects to change: a whole table, or some of its columns. */
export interface SnapshotExclusion {
  table: string;
  /** Columns to drop from every row; without it the whole table is dropped. */
  columns?: readonly string[];
}

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;

/**
 * Reads every table of the SQLite file at `file` (Kysely's own migration tables aside) through a new
 * read-only connection, so the snapshot sees exactly what the server has committed (WAL included)
 * and shares no cache with it. Rows are ordered by all their columns, so two snapshots of the same
 * data are deep-equal whatever order the server wrote them in.
 */
export function snapshotDatabase(file: string): DbSnapshot {
  const db = new SqliteDatabase(file, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare(
        `SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'kysely\\_migration%' ESCAPE '\\'
         ORDER BY name`,
      )
      .all() as { name: string }[];
    const snapshot: DbSnapshot = {};
    for (const { name } of tables) snapshot[name] = readTable(db, name);
    return snapshot;
  } finally {
    db.close();
  }
}

function readTable(db: SqliteDatabase.Database, table: string): Record<string, SnapshotValue>[] {
  const columns = (db.prepare(`PRAGMA table_info(${quote(table)})`).all() as { name: string }[]).map((c) => c.name);
  if (columns.length === 0) return [];
  const order = columns.map(quote).join(', ');
  const rows = db.prepare(`SELECT * FROM ${quote(table)} ORDER BY ${order}`).all() as Record<string, unknown>[];
  return rows.map((row) => {
    const out: Record<string, SnapshotValue> = {};
    for (const column of columns) out[column] = toSnapshotValue(row[column]);
    return out;
  });
}

/**
 * The same snapshot of a PostgreSQL database (public schema, Kysely's migration tables aside), in one
 * round trip per table list and one for the rows: each table aggregated to JSON, ordered by the row's
 * text form. BYTEA comes back as PostgreSQL's hex form (backslash, x, digits); numbers as JSON numbers.
 */
export async function snapshotPostgres(client: pg.Client): Promise<DbSnapshot> {
  const { rows: tables } = await client.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'kysely\\_migration%'
      ORDER BY table_name`,
  );
  if (tables.length === 0) return {};
  const columns = tables.map(
    ({ name }) => `(SELECT coalesce(json_agg(t ORDER BY t::text), '[]') FROM ${quote(name)} t) AS ${quote(name)}`,
  );
  const { rows } = await client.query<Record<string, Record<string, unknown>[]>>(`SELECT ${columns.join(', ')}`);
  const snapshot: DbSnapshot = {};
  for (const { name } of tables) {
    snapshot[name] = (rows[0]?.[name] ?? []).map((row) =>
      Object.fromEntries(Object.entries(row).map(([column, value]) => [column, fromJson(value)])),
    );
  }
  return snapshot;
}

function fromJson(value: unknown): SnapshotValue {
  return value === null || typeof value === 'string' || typeof value === 'number' ? value : JSON.stringify(value);
}

function toSnapshotValue(value: unknown): SnapshotValue {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') {
    return value;
  }
  throw new TypeError(`unexpected SQLite value of type ${typeof value}`);
}

/**
 * The snapshot without the excluded tables and columns, for comparing two snapshots where a request
 * is expected to touch those parts (and only those). Rows are re-sorted, as dropping a column can
 * reorder them.
 */
export function withoutExcluded(snapshot: DbSnapshot, exclusions: readonly SnapshotExclusion[]): DbSnapshot {
  for (const { table } of exclusions) {
    if (!Object.hasOwn(snapshot, table)) throw new Error(`exclusion names no table of the database: ${table}`);
  }
  const out: DbSnapshot = {};
  for (const [table, rows] of Object.entries(snapshot)) {
    const matching = exclusions.filter((e) => e.table === table);
    if (matching.some((e) => e.columns === undefined)) continue;
    const dropped = new Set(matching.flatMap((e) => e.columns ?? []));
    const kept = rows.map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => !dropped.has(column))));
    out[table] = kept.sort((a, b) => compareRows(a, b));
  }
  return out;
}

function compareRows(a: Record<string, SnapshotValue>, b: Record<string, SnapshotValue>): number {
  const left = JSON.stringify(Object.values(a), bigintReplacer);
  const right = JSON.stringify(Object.values(b), bigintReplacer);
  return left < right ? -1 : left > right ? 1 : 0;
}

const bigintReplacer = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);
