import type { MatrixCrypto } from '@latchkey/core';
import { openIndexedDbBackend } from '../keystore/indexeddb-backend.js';
import type { RecordBackend } from '../keystore/record-backend.js';
import { webMatrixCrypto } from './webcrypto.js';

/** What differs between Node and the browser; the `#platform` import picks this file in browsers. */
export const matrixCrypto: MatrixCrypto = webMatrixCrypto;

/** In a browser a keystore location is an IndexedDB database name. */
export async function openRecordBackend(location: string): Promise<RecordBackend> {
  return openIndexedDbBackend(location);
}

/** Deletes the keystore's IndexedDB database (once no tab holds it open). */
export function eraseRecordBackend(location: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(location);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
  });
}
