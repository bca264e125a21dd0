import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  concatBytes,
  fromBase64Url,
  type KA,
  type KB,
  LatchkeyError,
  openEnvelope,
  sealEnvelope,
  toBase64Url,
  utf8,
} from '@latchkey/core';
import { removeIfPresent, sessionFilePath } from './state.js';

/**
 * `latchkey unlock`: kA and kB of one login, sealed (AES-256-GCM, our envelope) under a fresh random
 * session key that only the shell holds, as `LATCHKEY_SESSION`. The file alone opens nothing; the
 * key alone finds nothing once the file is gone (`latchkey lock`, logout, expiry).
 */
export interface Unlocked {
  kA: KA;
  kB: KB;
  expiresAt: number;
}

/** Which login the sealed keys belong to, and until when: all of it is bound into the seal. */
export interface UnlockHeader {
  server: string;
  accountId: string;
  sessionId: string;
  createdAt: number;
  expiresAt: number;
}

/** The environment variable that carries the session key. */
export const SESSION_VARIABLE = 'LATCHKEY_SESSION';

const FORMAT_VERSION = 1;
const KEY_LENGTH = 32;
/** Names what the envelope holds, so no other envelope of ours opens as one (see envelope.ts). */
const AAD_LABEL = 'latchkey.cli.unlocked.v1';

const HOW_TO_GO_ON = `run \`latchkey unlock\` again, or unset ${SESSION_VARIABLE} to be asked for the password`;

/** The session key the environment gives, if any (an empty variable counts as unset). */
export function sessionKeyOf(env: NodeJS.ProcessEnv): string | undefined {
  const key = env[SESSION_VARIABLE];
  return key === undefined || key === '' ? undefined : key;
}

/** The sealed file: `unlocked.json` beside the session file. */
export function unlockedFilePath(env: NodeJS.ProcessEnv): string {
  return join(dirname(sessionFilePath(env)), 'unlocked.json');
}

/**
 * Seals kA ‖ kB under a fresh session key and writes the file (mode 0600, whole or not at all).
 * Returns the session key as `LATCHKEY_SESSION` carries it (base64url). The keys passed in are the
 * caller's to wipe; the copy made here is wiped before this returns.
 */
export function sealUnlocked(path: string, header: UnlockHeader, kA: KA, kB: KB): string {
  const key = randomBytes(KEY_LENGTH);
  const plaintext = concatBytes(kA, kB);
  try {
    const sealed = sealEnvelope(key, plaintext, aad(header), randomBytes(12));
    const body = { version: FORMAT_VERSION, ...header, sealed: toBase64Url(sealed) };
    writePrivately(path, `${JSON.stringify(body, null, 2)}\n`);
    return toBase64Url(key);
  } finally {
    plaintext.fill(0);
    key.fill(0);
  }
}

/**
 * Opens the file with the session key from the environment, for the login `expected` (the saved
 * session): `LK_LOCKED` when there is nothing to open (locked, never unlocked here, or from another
 * login), `LK_UNLOCK_EXPIRED` once it has expired (the file is then deleted), and
 * `LK_UNLOCK_KEY_INVALID` for a key that is malformed or does not open it.
 */
export function openUnlocked(
  path: string,
  sessionKey: string,
  expected: Pick<UnlockHeader, 'server' | 'accountId' | 'sessionId'>,
  now: number,
): Unlocked {
  const body = readUnlocked(path);
  if (body === undefined) {
    throw new LatchkeyError(
      'LK_LOCKED',
      `${SESSION_VARIABLE} is set, but nothing is unlocked (it was locked, or never unlocked for this login); ${HOW_TO_GO_ON}.`,
    );
  }
  const { header, sealed } = body;
  if (
    header.server !== expected.server ||
    header.accountId !== expected.accountId ||
    header.sessionId !== expected.sessionId
  ) {
    throw new LatchkeyError('LK_LOCKED', `The unlocked keys belong to another login; ${HOW_TO_GO_ON}.`);
  }
  if (now >= header.expiresAt) {
    lockFile(path);
    throw new LatchkeyError(
      'LK_UNLOCK_EXPIRED',
      `The unlock ended at ${new Date(header.expiresAt).toISOString()}; ${HOW_TO_GO_ON}.`,
      { expiresAt: header.expiresAt },
    );
  }
  const key = sessionKeyBytes(sessionKey);
  let plaintext: Uint8Array;
  try {
    plaintext = openEnvelope(key, sealed, aad(header));
  } catch {
    throw new LatchkeyError(
      'LK_UNLOCK_KEY_INVALID',
      `${SESSION_VARIABLE} does not open the unlocked keys (it is from an earlier unlock?); ${HOW_TO_GO_ON}.`,
    );
  } finally {
    key.fill(0);
  }
  try {
    if (plaintext.length !== 2 * KEY_LENGTH) throw new LatchkeyError('LK_UNLOCK_KEY_INVALID');
    return {
      kA: plaintext.slice(0, KEY_LENGTH) as KA,
      kB: plaintext.slice(KEY_LENGTH) as KB,
      expiresAt: header.expiresAt,
    };
  } finally {
    plaintext.fill(0);
  }
}

/** Deletes the sealed file; true if there was one. */
export function lockFile(path: string): boolean {
  return removeIfPresent(path);
}

function sessionKeyBytes(text: string): Uint8Array {
  let key: Uint8Array | undefined;
  try {
    key = fromBase64Url(text.trim());
  } catch {
    key = undefined;
  }
  if (key === undefined || key.length !== KEY_LENGTH) {
    key?.fill(0);
    throw new LatchkeyError(
      'LK_UNLOCK_KEY_INVALID',
      `${SESSION_VARIABLE} is not a session key (43 characters of base64url, as \`latchkey unlock\` prints); ${HOW_TO_GO_ON}.`,
    );
  }
  return key;
}

/** The associated data: the label and every header field, so none can be changed (expiry extended) without the key. */
function aad(header: UnlockHeader): Uint8Array {
  const { server, accountId, sessionId, createdAt, expiresAt } = header;
  return utf8(JSON.stringify([AAD_LABEL, FORMAT_VERSION, server, accountId, sessionId, createdAt, expiresAt]));
}

function readUnlocked(path: string): { header: UnlockHeader; sealed: Uint8Array } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const strings = ['server', 'accountId', 'sessionId', 'sealed'].every((k) => typeof v[k] === 'string');
    const numbers = ['createdAt', 'expiresAt'].every((k) => Number.isSafeInteger(v[k]));
    if (v.version !== FORMAT_VERSION || !strings || !numbers) return undefined;
    const header: UnlockHeader = {
      server: v.server as string,
      accountId: v.accountId as string,
      sessionId: v.sessionId as string,
      createdAt: v.createdAt as number,
      expiresAt: v.expiresAt as number,
    };
    return { header, sealed: fromBase64Url(v.sealed as string, 'sealed') };
  } catch {
    // A damaged file opens nothing: as good as locked.
    return undefined;
  }
}

/** Writes `text` with mode 0600 in a 0700 directory, to a fresh name renamed into place. */
function writePrivately(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600, flag: 'wx' });
  try {
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
