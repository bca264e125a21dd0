import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  type SqliteDatabase as SqliteDialectDatabase,
} from 'kysely';
import pg from 'pg';
import type { Dialect } from './migrate.js';
import type { Database } from './schema.js';

export interface Connection {
  db: Kysely<Database>;
  dialect: Dialect;
  /** Where the data lives on disk (SQLite) or a redacted URL (PostgreSQL), for logs. */
  location: string;
}

/**
 * Opens the database named by a `LATCHKEY_DB` URL: `sqlite:<path>` (the embedded default; `sqlite::memory:`
 * for throwaway use) or `postgres://…`. SQLite runs in WAL mode so readers never block the writer.
 */
export function connect(url: string): Connection {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return connectPostgres(url);
  if (url.startsWith('sqlite:')) return connectSqlite(url.slice('sqlite:'.length));
  throw new Error(`LATCHKEY_DB must start with sqlite: or postgres:// (got ${JSON.stringify(url.split(':')[0])})`);
}

function connectSqlite(path: string): Connection {
  const inMemory = path === ':memory:';
  const file = inMemory ? path : resolve(path);
  if (!inMemory) keepOwnerOnly(file);
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  // better-sqlite3 hands back Buffers for BLOBs; they are Uint8Arrays, as the row types say.
  return {
    db: new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: withStatementCache(sqlite) }) }),
    dialect: 'sqlite',
    location: file,
  };
}

/**
 * The database holds kA (sealed), session hashes and every account's backup: owner-only, as the master
 * key is. A missing data directory is made 0700. SQLite would create the database 0644 (less the
 * umask) and gives its -wal, -shm and -journal files the main file's mode (unix `findCreateFileMode`),
 * so the main file is created here first, 0600, and any of the four an earlier version left readable
 * by others is tightened before SQLite opens them.
 */
function keepOwnerOnly(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // 'a' creates an empty file (which SQLite takes as a new database) and never truncates one.
  closeSync(openSync(file, 'a', 0o600));
  for (const path of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    let mode: number;
    try {
      mode = statSync(path).mode;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    if ((mode & 0o077) !== 0) chmodSync(path, mode & 0o700);
  }
}

/**
 * SQLite with every transaction begun IMMEDIATE: it takes the write lock at BEGIN, waiting up to the
 * busy timeout, instead of at its first write. A deferred transaction that read first and then meets
 * another process's write gets SQLITE_BUSY at once (its snapshot is stale; the busy handler is not
 * called), while an immediate one has nothing to upgrade. Within one process Kysely's single connection
 * already runs transactions one at a time; this keeps a second process on the same file (the CLI beside
 * a server) from turning a race into an error.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    const driver = super.createDriver();
    return new Proxy(driver, {
      get(target, property) {
        if (property === 'beginTransaction') {
          return async (connection: DatabaseConnection) => {
            await connection.executeQuery(CompiledQuery.raw('begin immediate'));
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}

/** Enough for every distinct query the store makes; past it the cache starts afresh rather than grow. */
const STATEMENT_CACHE_LIMIT = 500;

/**
 * Kysely prepares every query afresh, and SQLite's compile step then costs about as much as running the
 * statement (bench/login.bench.ts). The store's SQL texts are few and fixed, so each compiled statement
 * is kept and reused; SQLite re-prepares a cached statement by itself if a migration changes the schema.
 * Reuse is safe: Kysely's SQLite driver runs one query at a time on its single connection.
 */
function withStatementCache(sqlite: SqliteDatabase.Database): SqliteDialectDatabase {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql) {
      let statement = statements.get(sql);
      if (statement === undefined) {
        if (statements.size >= STATEMENT_CACHE_LIMIT) statements.clear();
        statement = sqlite.prepare(sql);
        statements.set(sql, statement);
      }
      return statement;
    },
  };
}

const INT8_OID = 20;

function connectPostgres(url: string): Connection {
  // BIGINT columns hold millisecond times, well inside Number's exact range; parse them as numbers.
  const types = {
    getTypeParser: ((oid: number, format?: string) =>
      oid === INT8_OID
        ? (value: string) => Number(value)
        : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
  };
  const pool = new pg.Pool({ connectionString: url, types, max: 10 });
  const redacted = url.replace(/\/\/[^@/]*@/, '//***@');
  return {
    db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }),
    dialect: 'postgres',
    location: redacted,
  };
}
