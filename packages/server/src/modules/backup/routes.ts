import {
  type BackupAuthDataBody,
  BackupKeyParams,
  BackupKeysUpdateResponse,
  BackupPageQuery,
  BackupPageResponse,
  BackupRoomParams,
  type BackupUploadBody,
  BackupUploadRequest,
  BackupVersionInfo,
  BackupVersionParams,
  BackupVersionQuery,
  CreateBackupVersionRequest,
  CreateBackupVersionResponse,
  Empty,
  KeyBackupData,
  UpdateBackupVersionRequest,
} from '@latchkey/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { route } from '../../route.js';
import * as backup from './service.js';

/** A batch of 1,000 keys is about 700 KiB of JSON; allow headroom. */
export const UPLOAD_BODY_LIMIT = 4 * 1024 * 1024;

type Version = { params: { version: string } };
type VersionQuery = { query: { version: string } };

/** The backup module's routes, Matrix-shaped under /v1/backup (every one behind the session). */
export async function backupRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const r = route(app, ctx);
  const tag = 'backup';

  r.post('/v1/backup/version', {
    tag,
    summary: 'Create a backup version (it becomes the current one)',
    body: CreateBackupVersionRequest,
    reply: CreateBackupVersionResponse,
    guarded: true,
    handler: async ({ body }: { body: { auth_data: BackupAuthDataBody } }, auth) =>
      backup.createVersion(ctx, auth, body.auth_data),
  });

  r.get('/v1/backup/version', {
    tag,
    summary: 'The current backup version',
    reply: BackupVersionInfo,
    guarded: true,
    handler: async (_request, auth) => backup.getVersion(ctx, auth),
  });

  r.get('/v1/backup/version/:version', {
    tag,
    summary: 'One backup version',
    params: BackupVersionParams,
    reply: BackupVersionInfo,
    guarded: true,
    handler: async ({ params }: Version, auth) => backup.getVersion(ctx, auth, params.version),
  });

  r.put('/v1/backup/version/:version', {
    tag,
    summary: "Replace a version's auth_data (the algorithm cannot change)",
    params: BackupVersionParams,
    body: UpdateBackupVersionRequest,
    reply: Empty,
    guarded: true,
    handler: async (
      { params, body }: Version & { body: { auth_data: BackupAuthDataBody; version?: string } },
      auth,
    ) => {
      await backup.updateVersion(ctx, auth, params.version, body);
      return {};
    },
  });

  r.delete('/v1/backup/version/:version', {
    tag,
    summary: 'Delete a backup version and its keys (its number is never reused)',
    params: BackupVersionParams,
    reply: Empty,
    guarded: true,
    handler: async ({ params }: Version, auth) => {
      await backup.deleteVersion(ctx, auth, params.version);
      return {};
    },
  });

  r.put('/v1/backup/keys', {
    tag,
    summary: 'Upload a batch of keys to the current version',
    querystring: BackupVersionQuery,
    body: BackupUploadRequest,
    reply: BackupKeysUpdateResponse,
    guarded: true,
    bodyLimit: UPLOAD_BODY_LIMIT,
    handler: async ({ query, body }: VersionQuery & { body: BackupUploadBody }, auth) =>
      backup.uploadKeys(ctx, auth, query.version, body),
  });

  r.get('/v1/backup/keys', {
    tag,
    summary: 'A page of keys, ordered; follow next_cursor until it is null',
    querystring: BackupPageQuery,
    reply: BackupPageResponse,
    guarded: true,
    handler: async ({ query }: { query: { version: string; cursor?: string; limit?: string } }, auth) =>
      backup.pageKeys(ctx, auth, query),
  });

  r.get('/v1/backup/keys/:roomId/:sessionId', {
    tag,
    summary: 'One backed-up key',
    params: BackupKeyParams,
    querystring: BackupVersionQuery,
    reply: KeyBackupData,
    guarded: true,
    handler: async ({ params, query }: VersionQuery & { params: { roomId: string; sessionId: string } }, auth) =>
      backup.getKey(ctx, auth, query.version, params.roomId, params.sessionId),
  });

  r.delete('/v1/backup/keys', {
    tag,
    summary: 'Delete every key of a version',
    querystring: BackupVersionQuery,
    reply: BackupKeysUpdateResponse,
    guarded: true,
    handler: async ({ query }: VersionQuery, auth) => backup.deleteKeys(ctx, auth, query.version),
  });

  r.delete('/v1/backup/keys/:roomId', {
    tag,
    summary: "Delete one room's keys",
    params: BackupRoomParams,
    querystring: BackupVersionQuery,
    reply: BackupKeysUpdateResponse,
    guarded: true,
    handler: async ({ params, query }: VersionQuery & { params: { roomId: string } }, auth) =>
      backup.deleteKeys(ctx, auth, query.version, params.roomId),
  });

  r.delete('/v1/backup/keys/:roomId/:sessionId', {
    tag,
    summary: 'Delete one key',
    params: BackupKeyParams,
    querystring: BackupVersionQuery,
    reply: BackupKeysUpdateResponse,
    guarded: true,
    handler: async ({ params, query }: VersionQuery & { params: { roomId: string; sessionId: string } }, auth) =>
      backup.deleteKeys(ctx, auth, query.version, params.roomId, params.sessionId),
  });
}
