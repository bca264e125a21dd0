import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { RecordBackend, StoredRecord } from './record-backend.js';

/** The Node backend: one SQLite file (WAL), created with owner-only permissions. */
export function openSqliteBackend(path: string): RecordBackend {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
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
    },
    async getMeta(name) {
      return getMeta.get(name)?.value;
    },
    async setMeta(name, value) {
      setMeta.run(name, value);
    },
    async close() {
      db.close();
    },
  };
}
