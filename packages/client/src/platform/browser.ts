import { type Aead, type MatrixCrypto, nobleAead, nobleMatrixCrypto } from '@latchkey/core';
import { openIndexedDbBackend } from '../keystore/indexeddb-backend.js';
import type { RecordBackend } from '../keystore/record-backend.js';

/** What differs between Node and the browser; the `#platform` import picks this file in browsers. */
export const matrixCrypto: MatrixCrypto = nobleMatrixCrypto;
export const aead: Aead = nobleAead;

/** In a browser a keystore location is an IndexedDB database name. */
export async function openRecordBackend(location: string): Promise<RecordBackend> {
  return openIndexedDbBackend(location);
}
