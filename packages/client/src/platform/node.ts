import type { MatrixCrypto } from '@latchkey/core';
import type { RecordBackend } from '../keystore/record-backend.js';
import { openSqliteBackend } from '../keystore/sqlite-backend.js';
import { nodeMatrixCrypto } from './node-crypto.js';

/** What differs between Node and the browser; the `#platform` import picks this file in Node. */
export const matrixCrypto: MatrixCrypto = nodeMatrixCrypto;

/** In Node a keystore location is a file path. */
export async function openRecordBackend(location: string): Promise<RecordBackend> {
  return openSqliteBackend(location);
}
