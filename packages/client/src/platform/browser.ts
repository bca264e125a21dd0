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
