import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { LatchkeyError, type MasterKey } from '@latchkey/core';

const MASTER_KEY_LENGTH = 32;

/**
 * Loads the server master key, creating it on first start: 32 random bytes in a file only its owner
 * may read (mode 0600, created exclusively so two starting nodes cannot both write one). A file that
 * others may read is tightened to 0600 and a file of the wrong size is refused (`LK_CONFIG_INVALID`).
 */
export function loadOrCreateMasterKey(path: string): MasterKey {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, randomBytes(MASTER_KEY_LENGTH));
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  const key = new Uint8Array(readFileSync(path));
  if (key.length !== MASTER_KEY_LENGTH) {
    key.fill(0);
    throw new LatchkeyError(
      'LK_CONFIG_INVALID',
      `master key file ${path} must hold exactly ${MASTER_KEY_LENGTH} bytes (has ${key.length})`,
      { file: path },
    );
  }
  return key as MasterKey;
}
