import type { RecordBackend, StoredRecord } from './record-backend.js';

/** The browser backend: one IndexedDB database with a records store keyed by [kind, id]. */
export async function openIndexedDbBackend(name: string): Promise<RecordBackend> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore('records');
      request.result.createObjectStore('meta');
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const run = <T>(store: string, mode: IDBTransactionMode, work: (s: IDBObjectStore) => IDBRequest<T> | undefined) =>
    new Promise<T>((resolve, reject) => {
      const tx = db.transaction(store, mode);
      const request = work(tx.objectStore(store));
      tx.oncomplete = () => resolve(request?.result as T);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  const range = (kind: string) => IDBKeyRange.bound([kind, ''], [kind, '\uffff']);
  return {
    putMany: (kind, records) =>
      run('records', 'readwrite', (s) => {
        for (const r of records) s.put(r.value, [kind, r.id]);
        return undefined;
      }),
    get: (kind, id) => run<Uint8Array | undefined>('records', 'readonly', (s) => s.get([kind, id])),
    async getAll(kind) {
      const [keys, values] = await Promise.all([
        run<IDBValidKey[]>('records', 'readonly', (s) => s.getAllKeys(range(kind))),
        run<Uint8Array[]>('records', 'readonly', (s) => s.getAll(range(kind))),
      ]);
      return keys.map((key, i): StoredRecord => ({ id: (key as [string, string])[1], value: values[i] as Uint8Array }));
    },
    count: (kind) => run<number>('records', 'readonly', (s) => s.count(range(kind))),
    deleteMany: (kind, ids) =>
      run('records', 'readwrite', (s) => {
        for (const id of ids) s.delete([kind, id]);
        return undefined;
      }),
    getMeta: (key) => run<string | undefined>('meta', 'readonly', (s) => s.get(key)),
    async setMeta(key, value) {
      await run('meta', 'readwrite', (s) => s.put(value, key));
    },
    async close() {
      db.close();
    },
  };
}
