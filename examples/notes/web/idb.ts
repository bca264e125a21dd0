/**
 * The few IndexedDB calls the page needs, as promises. IndexedDB, not localStorage: it stores
 * structured clones, so a non-extractable CryptoKey (the relier's pending private key, the note key)
 * is kept as itself and never as bytes a script could read.
 */

const DATABASE = 'latchkey-notes';
/** `pending`: sign-ins under way, by their OAuth state. `session`: the signed-in user, under `current`. */
export type StoreName = 'pending' | 'session';

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export class KeyValueDb {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(): Promise<KeyValueDb> {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore('pending');
      request.result.createObjectStore('session');
    };
    return new KeyValueDb(await done(request));
  }

  private store(name: StoreName, mode: IDBTransactionMode): IDBObjectStore {
    return this.db.transaction(name, mode).objectStore(name);
  }

  async get<T>(name: StoreName, key: string): Promise<T | undefined> {
    return (await done(this.store(name, 'readonly').get(key))) as T | undefined;
  }

  async put(name: StoreName, key: string, value: unknown): Promise<void> {
    await done(this.store(name, 'readwrite').put(value, key));
  }

  async delete(name: StoreName, key: string): Promise<void> {
    await done(this.store(name, 'readwrite').delete(key));
  }

  async clear(name: StoreName): Promise<void> {
    await done(this.store(name, 'readwrite').clear());
  }
}
