/** One stored record: an opaque id (an HMAC of its name), a kind, and sealed bytes. */
export interface StoredRecord {
  id: string;
  value: Uint8Array;
}

/**
 * Where the local keystore keeps its sealed records: a SQLite file in Node, IndexedDB in a browser.
 * The backend sees only ids that are MACs of names and values that are ciphertext.
 */
export interface RecordBackend {
  /** Writes all records in one transaction (all land or none do). */
  putMany(kind: string, records: StoredRecord[]): Promise<void>;
  get(kind: string, id: string): Promise<Uint8Array | undefined>;
  getAll(kind: string): Promise<StoredRecord[]>;
  count(kind: string): Promise<number>;
  deleteMany(kind: string, ids: string[]): Promise<void>;
  /** Small clear-text settings of the store itself (its device id, format version). */
  getMeta(name: string): Promise<string | undefined>;
  setMeta(name: string, value: string): Promise<void>;
  close(): Promise<void>;
}
