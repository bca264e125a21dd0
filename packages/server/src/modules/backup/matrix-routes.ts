import { Readable } from 'node:stream';
import {
  type BackedUpKeyBody,
  type BackupAuthDataBody,
  BackupKeyParams,
  BackupKeysUpdateResponse,
  BackupRoomParams,
  type BackupUploadBody,
  BackupUploadRequest,
  BackupVersionInfo,
  CreateBackupVersionRequest,
  CreateBackupVersionResponse,
  Empty,
  ERRORS,
  fromBase64Url,
  KeyBackupData,
  type KeyBackupDataBody,
  LatchkeyError,
  MAX_BACKUP_BATCH,
  MAX_ID_LENGTH,
  UpdateBackupVersionRequest,
} from '@latchkey/core';
import { type TSchema, Type } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../../context.js';
import { authenticate } from '../accounts/service.js';
import { UPLOAD_BODY_LIMIT } from './routes.js';
import * as backup from './service.js';

/**
 * The Matrix client-server API's key backup routes (spec "Server-side key backups",
 * `/_matrix/client/v3/room_keys/...`), so a Matrix client can use Latchkey as its backup store. They
 * are an adapter: the same service functions as /v1/backup make every decision (which version takes
 * writes, the better-key rule, etag and count); this file only speaks Matrix's URLs, shapes, tokens
 * and errors.
 */

/**
 * The plugin's prefix: every path under it, known or not, answers in Matrix's shape. The routes are
 * the spec's v3 client-server ones beneath it.
 */
export const MATRIX_PREFIX = '/_matrix';
const CLIENT_V3 = '/client/v3';

/**
 * Keys read from the database per step of an unpaged download (GET keys, GET keys/{roomId}). The
 * answer is streamed as it is read and read only as fast as the client takes it, so the server holds
 * a few batches of it (the one being read, one queued, one in the socket's buffer: a few MB at 700 B a
 * key) however large the backup; a client still receives all of it.
 */
export const UNPAGED_BATCH = MAX_BACKUP_BATCH;

// ---- errors -------------------------------------------------------------------------------------

/** A Matrix error as the spec shapes it (`{errcode, error}` plus per-code fields). */
export interface MatrixErrorBody {
  errcode: string;
  error: string;
  current_version?: string;
  retry_after_ms?: number;
  soft_logout?: boolean;
  /** Our stable code, where Matrix has no errcode of its own for the case (`LK_REAUTH_REQUIRED`). */
  lk_code?: string;
}

/** An error raised by this adapter itself (token handling), already in Matrix terms. */
class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly body: MatrixErrorBody,
  ) {
    super(body.error);
  }
}

const MatrixErrorSchema = Type.Object(
  {
    errcode: Type.String(),
    error: Type.String(),
    current_version: Type.Optional(Type.String()),
    retry_after_ms: Type.Optional(Type.Integer()),
    soft_logout: Type.Optional(Type.Boolean()),
    lk_code: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

/** Fastify's own request errors, as Matrix codes (spec "Standard error response"). */
const FASTIFY_CODES: Record<string, [number, string]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'M_NOT_JSON'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'M_NOT_JSON'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'M_NOT_JSON'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'M_TOO_LARGE'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [400, 'M_NOT_JSON'],
};

const error = (errcode: string, message: string, extra: Partial<MatrixErrorBody> = {}): MatrixErrorBody => ({
  errcode,
  error: message,
  ...extra,
});

/**
 * Our `LK_*` errors in Matrix terms. Exported for its unit test: only the rate limit has no route here
 * that raises it today (the backup routes are not rate-limited), and it must still come out as the
 * spec's `M_LIMIT_EXCEEDED` the day one is.
 */
export function matrixErrorOf(known: LatchkeyError): { status: number; body: MatrixErrorBody } {
  const at = (status: number, body: MatrixErrorBody) => ({ status, body });
  const current = known.details?.currentVersion;
  switch (known.code) {
    case 'LK_WRONG_BACKUP_VERSION':
      // Spec: 403 with the version that does take writes, so the client can re-check trust and switch.
      return at(
        403,
        error('M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version.', {
          ...(typeof current === 'string' ? { current_version: current } : {}),
        }),
      );
    case 'LK_BACKUP_NOT_FOUND':
      return at(404, error('M_NOT_FOUND', 'Unknown backup version.'));
    case 'LK_BACKUP_KEY_NOT_FOUND':
      return at(404, error('M_NOT_FOUND', 'Key not found.'));
    case 'LK_UNAUTHORIZED':
      return at(401, error('M_UNKNOWN_TOKEN', 'Unknown or expired access token.', { soft_logout: false }));
    case 'LK_REAUTH_REQUIRED':
      // Deleting keys, or replacing auth_data, needs a recent password check. Not User-Interactive Auth's 401: its stages send
      // the password to the server, and ours never sees it (OPAQUE); the client reauthenticates
      // through Latchkey's /v1/session/reauth and retries. The token stays valid, so no M_UNKNOWN_TOKEN.
      return at(403, error('M_FORBIDDEN', known.message, { lk_code: known.code }));
    case 'LK_RATE_LIMITED': {
      const seconds = known.details?.retryAfterSeconds;
      return at(
        429,
        error('M_LIMIT_EXCEEDED', known.message, typeof seconds === 'number' ? { retry_after_ms: seconds * 1000 } : {}),
      );
    }
    case 'LK_INVALID_JSON':
    case 'LK_UNSUPPORTED_MEDIA_TYPE':
      return at(400, error('M_NOT_JSON', known.message));
    case 'LK_BODY_TOO_LARGE':
      return at(413, error('M_TOO_LARGE', known.message));
    case 'LK_NOT_FOUND':
    case 'LK_METHOD_NOT_ALLOWED':
      return at(404, error('M_UNRECOGNIZED', 'Unrecognized request.'));
    case 'LK_VALIDATION':
    case 'LK_BAD_BASE64':
    case 'LK_BACKUP_ALGORITHM_MISMATCH':
      return at(400, error('M_INVALID_PARAM', known.message));
    default:
      return at(known.status, error('M_UNKNOWN', known.message));
  }
}

/** Schema failures: a missing required query parameter, a bad parameter, or a body of the wrong shape. */
function validationError(err: FastifyError): { status: number; body: MatrixErrorBody } {
  const first = err.validation?.[0];
  const where = err.validationContext ?? 'body';
  const path = `${where}${first?.instancePath ?? ''}`;
  const message = `${path} ${first?.message ?? 'is invalid'}`.trim();
  if (where !== 'body') {
    return first?.keyword === 'required'
      ? { status: 400, body: error('M_MISSING_PARAM', message) }
      : { status: 400, body: error('M_INVALID_PARAM', message) };
  }
  // Spec (PUT room_keys/version/{version}): an algorithm other than the backup's is M_INVALID_PARAM.
  if (first?.instancePath === '/algorithm') return { status: 400, body: error('M_INVALID_PARAM', message) };
  return { status: 400, body: error('M_BAD_JSON', message) };
}

function toMatrix(err: unknown): { status: number; body: MatrixErrorBody } | undefined {
  if (err instanceof MatrixError) return { status: err.status, body: err.body };
  if (err instanceof LatchkeyError) return ERRORS[err.code].expose ? matrixErrorOf(err) : undefined;
  const fastifyError = err as FastifyError;
  if (fastifyError.validation !== undefined) return validationError(fastifyError);
  const mapped = fastifyError.code === undefined ? undefined : FASTIFY_CODES[fastifyError.code];
  if (mapped !== undefined) return { status: mapped[0], body: error(mapped[1], fastifyError.message) };
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status: 400, body: error('M_UNKNOWN', 'The request is malformed.') };
  }
  return undefined;
}

/**
 * Answers every error of these routes in Matrix's shape. As elsewhere (conventions §4), anything
 * unexpected is logged in full and reaches the client only as a bare internal error.
 */
function installMatrixErrors(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request, reply) => {
    const known = toMatrix(err);
    if (known === undefined || known.status >= 500) {
      request.log.error({ err }, 'unexpected error');
      return reply.status(500).send(error('M_UNKNOWN', 'Internal server error.'));
    }
    if (known.body.retry_after_ms !== undefined) {
      void reply.header('retry-after', String(Math.ceil(known.body.retry_after_ms / 1000)));
    }
    return reply.status(known.status).send(known.body);
  });
  app.setNotFoundHandler((_request, reply) => reply.status(404).send(error('M_UNRECOGNIZED', 'Unrecognized request.')));
}

// ---- authentication -----------------------------------------------------------------------------

const BEARER = /^Bearer (.*)$/;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * A Latchkey access token, from `Authorization: Bearer` or the `access_token` query parameter (spec
 * "Using access tokens": deprecated for clients since v1.11, but homeservers MUST support both; the
 * server's logs drop it from URLs, see {@link redactAccessToken}). Missing is M_MISSING_TOKEN; one that
 * is malformed, unknown or expired is M_UNKNOWN_TOKEN. It runs before the body is read, so a request
 * without a live session costs no parsing.
 */
function matrixGuard(ctx: ServerContext) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    const query = (request.query as { access_token?: unknown }).access_token;
    if (header !== undefined && query !== undefined) {
      // Synapse refuses the mix too: two tokens would leave it unclear whose request this is.
      throw new MatrixError(401, error('M_MISSING_TOKEN', 'Give the access token once: header or query, not both.'));
    }
    let token: unknown = query;
    if (header !== undefined) {
      const match = BEARER.exec(header);
      if (match === null)
        throw new MatrixError(401, error('M_MISSING_TOKEN', 'The Authorization header is not Bearer.'));
      token = match[1];
    }
    if (token === undefined) throw new MatrixError(401, error('M_MISSING_TOKEN', 'Missing access token.'));
    if (typeof token !== 'string' || !TOKEN.test(token)) throw new LatchkeyError('LK_UNAUTHORIZED');
    let bytes: Uint8Array;
    try {
      bytes = fromBase64Url(token, 'token');
    } catch {
      // 43 characters can still be non-canonical (nonzero trailing bits): no session has such a token.
      throw new LatchkeyError('LK_UNAUTHORIZED');
    }
    request.auth = await authenticate(ctx, bytes);
  };
}

/** The URL with the value of any `access_token` query parameter replaced, for log lines. */
export function redactAccessToken(url: string): string {
  const query = url.indexOf('?');
  if (query === -1) return url;
  return url.slice(0, query) + url.slice(query).replace(/([?&]access_token=)[^&#]*/gi, '$1[redacted]');
}

// ---- schemas ------------------------------------------------------------------------------------

const strict = { additionalProperties: false } as const;
/** Every route takes the token in the query too. */
const TokenOnly = Type.Object({ access_token: Type.Optional(Type.String({ maxLength: 1024 })) }, strict);
/**
 * `version` as the spec has it: an opaque string. Ours are decimal numbers, so any other string names
 * no version of ours and is answered M_NOT_FOUND, as a homeserver answers a version it never made.
 */
const OpaqueVersion = Type.String({ minLength: 1, maxLength: 255 });
const VersionQuery = Type.Object(
  { version: OpaqueVersion, access_token: Type.Optional(Type.String({ maxLength: 1024 })) },
  strict,
);
const VersionParams = Type.Object({ version: OpaqueVersion }, strict);
/** Record keys must be bounded by a pattern (TypeBox drops min/maxLength there); see protocol/backup.ts. */
const IdKey = Type.String({ pattern: `^[\\s\\S]{1,${MAX_ID_LENGTH}}$` });
const RoomKeyBackup = Type.Object(
  { sessions: Type.Record(IdKey, KeyBackupData, { maxProperties: MAX_BACKUP_BATCH, ...strict }) },
  strict,
);
const AllKeys = Type.Object({ rooms: Type.Record(IdKey, RoomKeyBackup) }, strict);
const KeyPutParams = BackupKeyParams;
const RoomParams = BackupRoomParams;

const OUR_VERSION = /^[1-9][0-9]{0,8}$/;

/** The version named, if it can be one of ours; else it names nothing (M_NOT_FOUND). */
function ourVersion(version: string): string {
  if (!OUR_VERSION.test(version)) throw new LatchkeyError('LK_BACKUP_NOT_FOUND');
  return version;
}

// ---- streaming the unpaged downloads ------------------------------------------------------------

/** One KeyBackupData as JSON, its fields in the spec's order. */
function keyJson(key: BackedUpKeyBody | KeyBackupDataBody): string {
  const { ephemeral, ciphertext, mac } = key.session_data;
  return JSON.stringify({
    first_message_index: key.first_message_index,
    forwarded_count: key.forwarded_count,
    is_verified: key.is_verified,
    session_data: { ephemeral, ciphertext, mac },
  });
}

/**
 * `{"rooms":{roomId:{"sessions":{sessionId:KeyBackupData}}}}` (or, for one room, `{"sessions":{...}}`)
 * written as the batches arrive. Keys come in (room_id, session_id) order, so each room's sessions are
 * contiguous and a room is closed when the next one starts. An error after the first byte cannot
 * become an error response any more: the stream fails and the connection is cut, so the client sees
 * a broken download, never a short one that parses.
 */
async function* unpagedJson(
  batches: AsyncGenerator<BackedUpKeyBody[], void, undefined>,
  oneRoom: boolean,
): AsyncGenerator<string> {
  let room: string | undefined;
  let firstSession = true;
  yield oneRoom ? '{"sessions":{' : '{"rooms":{';
  for await (const batch of batches) {
    const parts: string[] = [];
    for (const key of batch) {
      if (!oneRoom && key.room_id !== room) {
        parts.push(`${room === undefined ? '' : '}},'}${JSON.stringify(key.room_id)}:{"sessions":{`);
        room = key.room_id;
        firstSession = true;
      }
      parts.push(`${firstSession ? '' : ','}${JSON.stringify(key.session_id)}:${keyJson(key)}`);
      firstSession = false;
    }
    yield parts.join('');
  }
  yield oneRoom || room === undefined ? '}}' : '}}}}';
}

async function sendUnpaged(
  reply: FastifyReply,
  batches: AsyncGenerator<BackedUpKeyBody[], void, undefined>,
  oneRoom: boolean,
): Promise<FastifyReply> {
  void reply.type('application/json; charset=utf-8');
  // One chunk (one batch) queued at most: Readable.from's default would read 16 batches ahead of a slow client.
  return reply.send(Readable.from(unpagedJson(batches, oneRoom), { highWaterMark: 1 }));
}

// ---- routes -------------------------------------------------------------------------------------

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization',
};

interface MatrixRoute {
  summary: string;
  querystring?: TSchema;
  params?: TSchema;
  body?: TSchema;
  reply: TSchema;
  bodyLimit?: number;
  // biome-ignore lint/suspicious/noExplicitAny: the schema has validated the request; each handler names its shape.
  handler(request: any, reply: FastifyReply): Promise<unknown>;
}

type Req<T> = FastifyRequest & T;
type Auth = { auth: NonNullable<FastifyRequest['auth']> };

/**
 * The Matrix key backup routes: register with `{ prefix: MATRIX_PREFIX }`, in a plugin of their own so
 * that their errors and unknown paths answer in Matrix's shape. They are left out of /docs (the Matrix spec
 * documents them); the README lists them.
 */
export async function matrixBackupRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  installMatrixErrors(app);
  const guard = matrixGuard(ctx);
  // Spec ("API Standards"): clients should send Content-Type: application/json, "but this is not
  // required". Here (in this plugin only) a body of any or no media type is parsed as JSON, with
  // Fastify's own parser, and then meets the route's schema like any other.
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
  // Spec ("Web Browser Clients"): every endpoint answers CORS, and OPTIONS without running its logic,
  // so a Matrix web client on another origin can use these routes. The token is a bearer token, never a
  // cookie, so `*` lets no page act with credentials it does not already hold.
  app.addHook('onRequest', async (_request, reply) => {
    void reply.headers(CORS);
  });
  app.route({
    method: 'OPTIONS',
    url: '/*',
    schema: { hide: true },
    handler: async (_request, reply) => reply.status(204).send(),
  });

  const add = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, spec: MatrixRoute) => {
    app.route({
      method,
      url: `${CLIENT_V3}${url}`,
      schema: {
        hide: true,
        tags: ['matrix'],
        summary: spec.summary,
        querystring: spec.querystring ?? TokenOnly,
        ...(spec.params === undefined ? {} : { params: spec.params }),
        ...(spec.body === undefined ? {} : { body: spec.body }),
        response: { 200: spec.reply, '4xx': MatrixErrorSchema, '5xx': MatrixErrorSchema },
      },
      onRequest: guard,
      ...(spec.bodyLimit === undefined ? {} : { bodyLimit: spec.bodyLimit }),
      handler: (request, reply) => spec.handler(request, reply),
    });
  };

  // ---- versions ----

  add('POST', '/room_keys/version', {
    summary: 'Create a backup version (it becomes the current one)',
    body: CreateBackupVersionRequest,
    reply: CreateBackupVersionResponse,
    handler: async ({ auth, body }: Req<Auth & { body: { auth_data: BackupAuthDataBody } }>) =>
      backup.createVersion(ctx, auth, body.auth_data),
  });

  add('GET', '/room_keys/version', {
    summary: 'The latest backup version',
    reply: BackupVersionInfo,
    handler: async ({ auth }: Req<Auth>) => {
      try {
        return await backup.getVersion(ctx, auth);
      } catch (err) {
        if (err instanceof LatchkeyError && err.code === 'LK_BACKUP_NOT_FOUND') {
          throw new MatrixError(404, error('M_NOT_FOUND', 'No current backup version.'));
        }
        throw err;
      }
    },
  });

  add('GET', '/room_keys/version/:version', {
    summary: 'One backup version',
    params: VersionParams,
    reply: BackupVersionInfo,
    handler: async ({ auth, params }: Req<Auth & { params: { version: string } }>) =>
      backup.getVersion(ctx, auth, ourVersion(params.version)),
  });

  add('PUT', '/room_keys/version/:version', {
    summary: "Replace a version's auth_data (only auth_data may change)",
    params: VersionParams,
    body: UpdateBackupVersionRequest,
    reply: Empty,
    handler: async ({
      auth,
      params,
      body,
    }: Req<Auth & { params: { version: string }; body: { auth_data: BackupAuthDataBody; version?: string } }>) => {
      await backup.updateVersion(ctx, auth, ourVersion(params.version), body);
      return {};
    },
  });

  add('DELETE', '/room_keys/version/:version', {
    summary: 'Delete a backup version and its keys (again: still 200)',
    params: VersionParams,
    reply: Empty,
    handler: async ({ auth, params }: Req<Auth & { params: { version: string } }>) => {
      await backup.deleteVersion(ctx, auth, ourVersion(params.version), { deletedIsDone: true });
      return {};
    },
  });

  // ---- keys: the whole backup, one room, one session ----

  const upload = (auth: Auth['auth'], version: string, body: BackupUploadBody) =>
    backup.uploadKeys(ctx, auth, ourVersion(version), body);

  add('PUT', '/room_keys/keys', {
    summary: 'Store keys of several rooms in the current version',
    querystring: VersionQuery,
    body: BackupUploadRequest,
    reply: BackupKeysUpdateResponse,
    bodyLimit: UPLOAD_BODY_LIMIT,
    handler: async ({ auth, query, body }: Req<Auth & { query: { version: string }; body: BackupUploadBody }>) =>
      upload(auth, query.version, body),
  });

  add('PUT', '/room_keys/keys/:roomId', {
    summary: 'Store keys of one room in the current version',
    querystring: VersionQuery,
    params: RoomParams,
    body: RoomKeyBackup,
    reply: BackupKeysUpdateResponse,
    bodyLimit: UPLOAD_BODY_LIMIT,
    handler: async ({
      auth,
      query,
      params,
      body,
    }: Req<
      Auth & { query: { version: string }; params: { roomId: string }; body: BackupUploadBody['rooms'][string] }
    >) => upload(auth, query.version, { rooms: { [params.roomId]: body } }),
  });

  add('PUT', '/room_keys/keys/:roomId/:sessionId', {
    summary: 'Store one key in the current version',
    querystring: VersionQuery,
    params: KeyPutParams,
    body: KeyBackupData,
    reply: BackupKeysUpdateResponse,
    handler: async ({
      auth,
      query,
      params,
      body,
    }: Req<
      Auth & { query: { version: string }; params: { roomId: string; sessionId: string }; body: KeyBackupDataBody }
    >) => upload(auth, query.version, { rooms: { [params.roomId]: { sessions: { [params.sessionId]: body } } } }),
  });

  add('GET', '/room_keys/keys', {
    summary: 'Every key of a version, unpaged (streamed)',
    querystring: VersionQuery,
    reply: AllKeys,
    handler: async ({ auth, query }: Req<Auth & { query: { version: string } }>, reply) =>
      sendUnpaged(
        reply,
        await backup.keyBatches(ctx, auth, ourVersion(query.version), { batch: UNPAGED_BATCH }),
        false,
      ),
  });

  add('GET', '/room_keys/keys/:roomId', {
    summary: 'Every key of one room, unpaged (streamed)',
    querystring: VersionQuery,
    params: RoomParams,
    reply: RoomKeyBackup,
    handler: async (
      { auth, query, params }: Req<Auth & { query: { version: string }; params: { roomId: string } }>,
      reply,
    ) =>
      sendUnpaged(
        reply,
        await backup.keyBatches(ctx, auth, ourVersion(query.version), { roomId: params.roomId, batch: UNPAGED_BATCH }),
        true,
      ),
  });

  add('GET', '/room_keys/keys/:roomId/:sessionId', {
    summary: 'One key',
    querystring: VersionQuery,
    params: KeyPutParams,
    reply: KeyBackupData,
    handler: async ({
      auth,
      query,
      params,
    }: Req<Auth & { query: { version: string }; params: { roomId: string; sessionId: string } }>) =>
      backup.getKey(ctx, auth, ourVersion(query.version), params.roomId, params.sessionId),
  });

  add('DELETE', '/room_keys/keys', {
    summary: 'Delete every key of a version',
    querystring: VersionQuery,
    reply: BackupKeysUpdateResponse,
    handler: async ({ auth, query }: Req<Auth & { query: { version: string } }>) =>
      backup.deleteKeys(ctx, auth, ourVersion(query.version)),
  });

  add('DELETE', '/room_keys/keys/:roomId', {
    summary: "Delete one room's keys",
    querystring: VersionQuery,
    params: RoomParams,
    reply: BackupKeysUpdateResponse,
    handler: async ({ auth, query, params }: Req<Auth & { query: { version: string }; params: { roomId: string } }>) =>
      backup.deleteKeys(ctx, auth, ourVersion(query.version), params.roomId),
  });

  add('DELETE', '/room_keys/keys/:roomId/:sessionId', {
    summary: 'Delete one key',
    querystring: VersionQuery,
    params: KeyPutParams,
    reply: BackupKeysUpdateResponse,
    handler: async ({
      auth,
      query,
      params,
    }: Req<Auth & { query: { version: string }; params: { roomId: string; sessionId: string } }>) =>
      backup.deleteKeys(ctx, auth, ourVersion(query.version), params.roomId, params.sessionId),
  });
}
