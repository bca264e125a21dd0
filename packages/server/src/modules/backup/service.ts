import {
  type BackedUpKeyBody,
  type BackupAuthDataBody,
  type BackupUploadBody,
  fromBase64,
  fromBase64Url,
  fromUtf8,
  isBetterBackupKey,
  LatchkeyError,
  MAX_BACKUP_BATCH,
  MAX_BACKUP_PAGE,
  toBase64Url,
  utf8,
} from '@latchkey/core';
import type { ServerContext } from '../../context.js';
import type { BackupKeyRow, BackupVersionRow } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import { type AuthenticatedSession, requireFreshAuth } from '../accounts/service.js';

/**
 * The backup module (Matrix "Server-side key backups"): versions, and per room per session keys that
 * only the backup key can open. The server stores ciphertext and ranks keys by their public metadata.
 */

const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';

function versionInfo(row: BackupVersionRow) {
  return {
    algorithm: ALGORITHM as typeof ALGORITHM,
    auth_data: JSON.parse(row.auth_data) as BackupAuthDataBody,
    count: row.key_count,
    etag: String(row.etag),
    version: String(row.version),
  };
}

async function liveVersion(store: Store, accountId: string, version?: string): Promise<BackupVersionRow> {
  const row = await store.findBackupVersion(accountId, version === undefined ? undefined : Number(version));
  if (row === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
  return row;
}

/**
 * auth_data's public key must be a Curve25519 key, 32 bytes in canonical base64: a version holding
 * anything else would take uploads that no client could ever have encrypted properly.
 */
function checkAuthData(authData: BackupAuthDataBody): void {
  if (fromBase64(authData.public_key, 'auth_data.public_key').length !== 32) {
    throw new LatchkeyError('LK_VALIDATION', 'auth_data.public_key is not a 32-byte Curve25519 key.');
  }
}

export async function createVersion(ctx: ServerContext, auth: AuthenticatedSession, authData: BackupAuthDataBody) {
  checkAuthData(authData);
  const version = await ctx.store.createBackupVersion({
    account_id: auth.account.id,
    algorithm: ALGORITHM,
    auth_data: JSON.stringify(authData),
    created_at: ctx.now(),
  });
  return { version: String(version) };
}

export async function getVersion(ctx: ServerContext, auth: AuthenticatedSession, version?: string) {
  return versionInfo(await liveVersion(ctx.store, auth.account.id, version));
}

/**
 * Only `auth_data` may change (spec); the body's `version`, if present, must name the path's.
 * A different auth_data replaces the backup's public key or its signatures, which can cut every client
 * off from it: that needs a recent password check (issue 8, `LK_REAUTH_REQUIRED`), as deleting does.
 * The very auth_data already stored (the same JSON text: a retry) goes through on the token alone.
 * The comparison and the write are one transaction under the account's lock, so a concurrent change
 * cannot slip in between and be replaced unchecked.
 */
export async function updateVersion(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  version: string,
  body: { auth_data: BackupAuthDataBody; version?: string },
) {
  if (body.version !== undefined && body.version !== version) {
    throw new LatchkeyError('LK_VALIDATION', 'The body names a different version than the path.');
  }
  checkAuthData(body.auth_data);
  const authData = JSON.stringify(body.auth_data);
  await ctx.store.transaction(async (tx) => {
    const stored = await liveVersion(tx, auth.account.id, version);
    if (stored.auth_data === authData) return;
    requireFreshAuth(ctx, auth);
    await tx.updateBackupAuthData(auth.account.id, Number(version), authData);
  });
}

/**
 * Deletes a live version, for a session that proved its password recently (issue 8: a bearer token
 * alone must not wipe the backup). With `deletedIsDone` (the Matrix API: "If the backup was previously deleted,
 * the call should succeed rather than returning an error"), one deleted before is not an error either;
 * a version that never existed always is.
 */
export async function deleteVersion(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  version: string,
  options: { deletedIsDone?: boolean } = {},
) {
  requireFreshAuth(ctx, auth);
  if (await ctx.store.deleteBackupVersion(auth.account.id, Number(version))) return;
  if (options.deletedIsDone === true && (await ctx.store.backupVersionExisted(auth.account.id, Number(version))))
    return;
  throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
}

/**
 * The version keys may be written to: the newest live one. Writing to an older live version is
 * `LK_WRONG_BACKUP_VERSION` naming the current one (so the client can re-check trust and switch);
 * a version that does not exist is `LK_BACKUP_NOT_FOUND`.
 */
async function writableVersion(store: Store, accountId: string, version: string): Promise<BackupVersionRow> {
  const current = await store.findBackupVersion(accountId);
  if (current !== undefined && String(current.version) === version) return current;
  const requested = await store.findBackupVersion(accountId, Number(version));
  if (requested === undefined || current === undefined) {
    throw new LatchkeyError(
      'LK_BACKUP_NOT_FOUND',
      undefined,
      current ? { currentVersion: String(current.version) } : undefined,
    );
  }
  throw new LatchkeyError('LK_WRONG_BACKUP_VERSION', undefined, { currentVersion: String(current.version) });
}

function flatten(accountId: string, version: number, body: BackupUploadBody): BackupKeyRow[] {
  const rows: BackupKeyRow[] = [];
  for (const [roomId, room] of Object.entries(body.rooms)) {
    for (const [sessionId, key] of Object.entries(room.sessions)) {
      rows.push({
        account_id: accountId,
        version,
        room_id: roomId,
        session_id: sessionId,
        first_message_index: key.first_message_index,
        forwarded_count: key.forwarded_count,
        is_verified: key.is_verified ? 1 : 0,
        session_data: JSON.stringify(key.session_data),
      });
    }
  }
  if (rows.length > MAX_BACKUP_BATCH) {
    throw new LatchkeyError('LK_VALIDATION', `Upload at most ${MAX_BACKUP_BATCH} keys per request.`);
  }
  return rows;
}

const rank = (row: BackupKeyRow) => ({
  is_verified: row.is_verified === 1,
  first_message_index: row.first_message_index,
  forwarded_count: row.forwarded_count,
});

/**
 * Stores a batch in one transaction: each key is written only if it is better than the stored one
 * (core `isBetterBackupKey`, the spec's order). The etag moves when anything changed. When the answer
 * arrives, every key in the batch is durable.
 */
export async function uploadKeys(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  version: string,
  body: BackupUploadBody,
) {
  const accountId = auth.account.id;
  return ctx.store.transaction(async (tx) => {
    const target = await writableVersion(tx, accountId, version);
    // Touch the version row first: on PostgreSQL this row lock serialises concurrent uploads to one
    // version, so two batches cannot both count the same new key.
    await tx.bumpBackupVersion(accountId, target.version, 0, 0);
    const incoming = flatten(accountId, target.version, body);
    const stored = new Map(
      (
        await tx.findBackupKeys(
          accountId,
          target.version,
          incoming.map((k) => [k.room_id, k.session_id]),
        )
      ).map((row) => [`${row.room_id}\u0000${row.session_id}`, row]),
    );
    const better = incoming.filter((key) => {
      const existing = stored.get(`${key.room_id}\u0000${key.session_id}`);
      return existing === undefined || isBetterBackupKey(rank(key), rank(existing));
    });
    const added = better.filter((key) => !stored.has(`${key.room_id}\u0000${key.session_id}`)).length;
    if (better.length > 0) {
      await tx.putBackupKeys(better);
      await tx.bumpBackupVersion(accountId, target.version, 1, added);
    }
    const after = await liveVersion(tx, accountId, String(target.version));
    return { etag: String(after.etag), count: after.key_count };
  });
}

function toApiKey(row: BackupKeyRow): BackedUpKeyBody {
  return {
    room_id: row.room_id,
    session_id: row.session_id,
    first_message_index: row.first_message_index,
    forwarded_count: row.forwarded_count,
    is_verified: row.is_verified === 1,
    session_data: JSON.parse(row.session_data) as BackedUpKeyBody['session_data'],
  };
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const pair = JSON.parse(fromUtf8(fromBase64Url(cursor, 'cursor'))) as unknown;
    // The ids go into a query: U+0000 there is a PostgreSQL error (a 500), so it is no cursor of ours.
    const isId = (part: unknown) => typeof part === 'string' && !part.includes('\u0000');
    if (Array.isArray(pair) && pair.length === 2 && pair.every(isId)) {
      return pair as [string, string];
    }
  } catch {
    // fall through to the error below
  }
  throw new LatchkeyError('LK_VALIDATION', 'The cursor is not one this server gave out.');
}

/** One page of keys; a 500,000-key backup never needs one huge response. */
export async function pageKeys(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  query: { version: string; cursor?: string; limit?: string },
) {
  const target = await liveVersion(ctx.store, auth.account.id, query.version);
  const limit = Math.min(Number(query.limit ?? 1000), MAX_BACKUP_PAGE);
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await ctx.store.pageBackupKeys(auth.account.id, target.version, after, limit);
  const last = rows.at(-1);
  return {
    keys: rows.map(toApiKey),
    next_cursor:
      rows.length === limit && last ? toBase64Url(utf8(JSON.stringify([last.room_id, last.session_id]))) : null,
    count: target.key_count,
    etag: String(target.etag),
  };
}

/**
 * The keys of a version, or of one room of it, in (room_id, session_id) order and `batch` at a time,
 * for the Matrix API's unpaged downloads: the caller streams them, so a backup of any size holds at
 * most one batch in memory. The version is checked before the first batch, so a missing one fails
 * before anything is sent, and again before each later one: a version deleted half-way through ends
 * the reading with LK_BACKUP_NOT_FOUND rather than letting a truncated backup pass as whole.
 */
export async function keyBatches(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  version: string,
  options: { roomId?: string; batch: number },
): Promise<AsyncGenerator<BackedUpKeyBody[], void, undefined>> {
  const accountId = auth.account.id;
  const target = await liveVersion(ctx.store, accountId, version);
  const { roomId, batch } = options;
  return (async function* () {
    // Every session id is at least one character, so all of a room's keys sort after (roomId, '').
    let after: [string, string] | undefined = roomId === undefined ? undefined : [roomId, ''];
    for (let first = true; ; first = false) {
      if (!first) await liveVersion(ctx.store, accountId, version);
      const rows = await ctx.store.pageBackupKeys(accountId, target.version, after, batch);
      const wanted = roomId === undefined ? rows : rows.filter((row) => row.room_id === roomId);
      if (wanted.length > 0) yield wanted.map(toApiKey);
      const last = rows.at(-1);
      if (last === undefined || rows.length < batch || wanted.length < rows.length) return;
      after = [last.room_id, last.session_id];
    }
  })();
}

export async function getKey(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  version: string,
  roomId: string,
  sessionId: string,
) {
  const target = await liveVersion(ctx.store, auth.account.id, version);
  const [row] = await ctx.store.findBackupKeys(auth.account.id, target.version, [[roomId, sessionId]]);
  if (row === undefined) throw new LatchkeyError('LK_BACKUP_KEY_NOT_FOUND');
  const { room_id: _room, session_id: _session, ...data } = toApiKey(row);
  return data;
}

/**
 * Deletes keys (all, one room's, or one session's); every delete moves the etag, as Synapse does. Even
 * one key may be the only copy left, so each needs a recent password check, as deleting the version does.
 */
export async function deleteKeys(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  version: string,
  roomId?: string,
  sessionId?: string,
) {
  requireFreshAuth(ctx, auth);
  return ctx.store.transaction(async (tx) => {
    const target = await liveVersion(tx, auth.account.id, version);
    // The version row first, as uploads take it: on PostgreSQL a delete that locked key rows first and
    // the version row last deadlocked against an upload (version row, then keys), a 500.
    await tx.bumpBackupVersion(auth.account.id, target.version, 0, 0);
    const removed = await tx.deleteBackupKeys(auth.account.id, target.version, roomId, sessionId);
    await tx.bumpBackupVersion(auth.account.id, target.version, 1, -removed);
    const after = await liveVersion(tx, auth.account.id, version);
    return { etag: String(after.etag), count: after.key_count };
  });
}
