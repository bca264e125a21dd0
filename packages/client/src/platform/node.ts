import { rmSync } from 'node:fs';
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

/** Deletes the keystore file and its WAL companions; a missing file is already erased. */
export async function eraseRecordBackend(location: string): Promise<void> {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${location}${suffix}`, { force: true });
}
