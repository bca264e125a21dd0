import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { RecordBackend, StoredRecord } from './record-backend.js';

/**
 * Owner-only, whatever the umask: SQLite would create the file 0644 (less the umask) and gives its
 * -wal and -shm files the main file's mode (unix `findCreateFileMode`), so the main file is made here
 * first, 0600, and any of them an earlier version left readable by others is tightened.
 */
function keepOwnerOnly(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // 'a' creates an empty file (which SQLite takes as a new database) and never truncates one.
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let mode: number;
    try {
      mode = statSync(file).mode;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    if ((mode & 0o077) !== 0) chmodSync(file, mode & 0o700);
  }
}

/**
 * The Node backend: one SQLite file (WAL), owner-only. A deleted record (a key marked "do not store")
 * must not stay readable on disk: `secure_delete` overwrites its cells and freed pages with zeros, and
 * its earlier copies in the WAL go with a truncating checkpoint right after the delete.
 */
export function openSqliteBackend(path: string): RecordBackend {
  keepOwnerOnly(path);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('secure_delete = ON');
  // Every frame written so far holds older versions of pages, deleted records included: copied into
  // the file (where secure_delete has zeroed them) and the WAL cut to nothing.
  const dropWalHistory = () => db.pragma('wal_checkpoint(TRUNCATE)');
  db.exec(`
    CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (kind, id));
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  `);
  const put = db.prepare('INSERT OR REPLACE INTO records (kind, id, value) VALUES (?, ?, ?)');
  const putAll = db.transaction((kind: string, records: StoredRecord[]) => {
    for (const record of records) put.run(kind, record.id, record.value);
  });
  const remove = db.prepare('DELETE FROM records WHERE kind = ? AND id = ?');
  const removeAll = db.transaction((kind: string, ids: string[]) => {
    for (const id of ids) remove.run(kind, id);
  });
  const getOne = db.prepare<[string, string], { value: Buffer }>('SELECT value FROM records WHERE kind = ? AND id = ?');
  const getEvery = db.prepare<[string], { id: string; value: Buffer }>('SELECT id, value FROM records WHERE kind = ?');
  const countKind = db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM records WHERE kind = ?');
  const getMeta = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE name = ?');
  const setMeta = db.prepare('INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)');
  return {
    async putMany(kind, records) {
      putAll(kind, records);
    },
    async get(kind, id) {
      const row = getOne.get(kind, id);
      return row === undefined ? undefined : new Uint8Array(row.value);
    },
    async getAll(kind) {
      return getEvery.all(kind).map((row) => ({ id: row.id, value: new Uint8Array(row.value) }));
    },
    async count(kind) {
      return countKind.get(kind)?.n ?? 0;
    },
    async deleteMany(kind, ids) {
      removeAll(kind, ids);
      dropWalHistory();
    },
    async getMeta(name) {
      return getMeta.get(name)?.value;
    },
    async setMeta(name, value) {
      setMeta.run(name, value);
    },
    async close() {
      dropWalHistory();
      db.close();
    },
  };
}
