import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { SessionState } from '@latchkey/client';
import { type AccountId, LatchkeyError } from '@latchkey/core';

/**
 * What the CLI keeps between runs: the server and the session's state. Never kA or kB: those live
 * only in the memory of one command, after it proves the password again.
 */
export interface SavedSession extends SessionState {
  server: string;
}

const FORMAT_VERSION = 1;

/**
 * The session file: `$LATCHKEY_HOME/session.json`, else `$XDG_CONFIG_HOME/latchkey/session.json`,
 * else `~/.config/latchkey/session.json`.
 */
export function sessionFilePath(env: NodeJS.ProcessEnv): string {
  if (env.LATCHKEY_HOME) return join(env.LATCHKEY_HOME, 'session.json');
  const config = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(config, 'latchkey', 'session.json');
}

/**
 * This device's encrypted keystore for one account (room keys, sealed under keys derived from kB and
 * its device id): `keystore-<accountId>.db` beside the session file. One file per account, so logging
 * in to another account in the same LATCHKEY_HOME never meets (or clears) the first one's keys.
 */
export function keystoreFilePath(env: NodeJS.ProcessEnv, accountId: string): string {
  // The id comes from the server; as a file name it must not be able to climb out of the directory.
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(accountId)) {
    throw new LatchkeyError('LK_SERVER_PROTOCOL', 'The account id is not a plain identifier.');
  }
  return join(dirname(sessionFilePath(env)), `keystore-${accountId}.db`);
}

/**
 * Writes the session file with mode 0600 (its bearer token opens the account), in a directory made
 * with mode 0700. The file is written whole to a fresh name and renamed over the old one, so a
 * crash never leaves half a file, and an old file's looser mode never carries over.
 */
export function saveSession(path: string, session: SavedSession): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const { server, email, accountId, sessionId, token, expiresAt, keysChangedAt, deviceToken } = session;
  const body = {
    ...{ version: FORMAT_VERSION, server, email, accountId, sessionId, token, expiresAt, keysChangedAt },
    // This device's token for its next login (see SessionState.deviceToken); absent in older files.
    ...(deviceToken === undefined ? {} : { deviceToken }),
  };
  writeFileSync(temporary, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** Reads the session file; undefined when there is none. A damaged file is `LK_NOT_LOGGED_IN`. */
export function loadSession(path: string): SavedSession | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const session = parseSession(text);
  if (session === undefined) {
    throw new LatchkeyError('LK_NOT_LOGGED_IN', `The session file ${path} is damaged; log in again.`);
  }
  return session;
}

/** Deletes the session file; true if there was one. */
export function clearSession(path: string): boolean {
  return removeIfPresent(path);
}

/** Deletes a file the CLI keeps (session, unlock seal); true if there was one. */
export function removeIfPresent(path: string): boolean {
  try {
    rmSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

function parseSession(text: string): SavedSession | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const strings = ['server', 'email', 'accountId', 'sessionId', 'token'].every((k) => typeof v[k] === 'string');
  const numbers = ['expiresAt', 'keysChangedAt'].every((k) => Number.isSafeInteger(v[k]));
  if (v.version !== FORMAT_VERSION || !strings || !numbers) return undefined;
  return {
    server: v.server as string,
    email: v.email as string,
    accountId: v.accountId as AccountId,
    sessionId: v.sessionId as string,
    token: v.token as string,
    expiresAt: v.expiresAt as number,
    keysChangedAt: v.keysChangedAt as number,
    ...(typeof v.deviceToken === 'string' ? { deviceToken: v.deviceToken } : {}),
  };
}
