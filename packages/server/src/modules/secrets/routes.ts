import {
  DefaultStorageKey,
  Empty,
  LatchkeyError,
  SecretItem,
  type SecretItemBody,
  SecretParams,
  StorageKeyDescription,
  type StorageKeyDescriptionBody,
  StorageKeyList,
  StorageKeyParams,
} from '@latchkey/core';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { route } from '../../route.js';
import { type AuthenticatedSession, requireFreshAuth } from '../accounts/service.js';

/**
 * The secrets module (Matrix "Secrets"): storage-key descriptions (public: name, passphrase
 * parameters, key check) and secrets encrypted under those keys. The server holds ciphertext only.
 */
const KEY_PREFIX = 'ssss.key.';
const SECRET_PREFIX = 'ssss.secret.';
const DEFAULT_KEY = 'ssss.default_key';

async function requireKeys(ctx: ServerContext, auth: AuthenticatedSession, keyIds: string[]) {
  for (const keyId of keyIds) {
    if ((await ctx.store.getAccountData(auth.account.id, KEY_PREFIX + keyId)) === undefined) {
      throw new LatchkeyError('LK_SECRET_NOT_FOUND', `No storage key ${keyId}: describe it first.`);
    }
  }
}

async function readJson<T>(ctx: ServerContext, auth: AuthenticatedSession, type: string): Promise<T> {
  const content = await ctx.store.getAccountData(auth.account.id, type);
  if (content === undefined) throw new LatchkeyError('LK_SECRET_NOT_FOUND');
  return JSON.parse(content) as T;
}

export async function secretsRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const r = route(app, ctx);
  const tag = 'secrets';
  const put = (auth: AuthenticatedSession, type: string, value: unknown) =>
    ctx.store.putAccountData({ account_id: auth.account.id, type, content: JSON.stringify(value) });

  r.get('/v1/secret-storage/keys', {
    tag,
    summary: 'Every storage-key description, and the default key',
    reply: StorageKeyList,
    guarded: true,
    handler: async (_request, auth) => {
      const rows = await ctx.store.listAccountData(auth.account.id, KEY_PREFIX);
      const keys = Object.fromEntries(rows.map((row) => [row.type.slice(KEY_PREFIX.length), JSON.parse(row.content)]));
      const defaultKey = await ctx.store.getAccountData(auth.account.id, DEFAULT_KEY);
      return { default_key: defaultKey === undefined ? null : (JSON.parse(defaultKey) as { key: string }).key, keys };
    },
  });

  r.put('/v1/secret-storage/keys/:keyId', {
    tag,
    summary: 'Describe a storage key (never the key itself)',
    params: StorageKeyParams,
    body: StorageKeyDescription,
    reply: Empty,
    guarded: true,
    handler: async ({ params, body }: { params: { keyId: string }; body: StorageKeyDescriptionBody }, auth) => {
      await put(auth, KEY_PREFIX + params.keyId, body);
      return {};
    },
  });

  r.get('/v1/secret-storage/keys/:keyId', {
    tag,
    summary: 'One storage-key description',
    params: StorageKeyParams,
    reply: StorageKeyDescription,
    guarded: true,
    handler: async ({ params }: { params: { keyId: string } }, auth) =>
      readJson<StorageKeyDescriptionBody>(ctx, auth, KEY_PREFIX + params.keyId),
  });

  r.put('/v1/secret-storage/default-key', {
    tag,
    summary: 'Choose the default storage key',
    body: DefaultStorageKey,
    reply: Empty,
    guarded: true,
    handler: async ({ body }: { body: { key: string } }, auth) => {
      await requireKeys(ctx, auth, [body.key]);
      await put(auth, DEFAULT_KEY, body);
      return {};
    },
  });

  r.put('/v1/secret-storage/secrets/:name', {
    tag,
    summary: 'Store a secret, encrypted under one or more storage keys',
    params: SecretParams,
    body: SecretItem,
    reply: Empty,
    guarded: true,
    handler: async ({ params, body }: { params: { name: string }; body: SecretItemBody }, auth) => {
      await requireKeys(ctx, auth, Object.keys(body.encrypted));
      await put(auth, SECRET_PREFIX + params.name, body);
      return {};
    },
  });

  r.get('/v1/secret-storage/secrets/:name', {
    tag,
    summary: 'A stored secret (ciphertext)',
    params: SecretParams,
    reply: SecretItem,
    guarded: true,
    handler: async ({ params }: { params: { name: string } }, auth) =>
      readJson<SecretItemBody>(ctx, auth, SECRET_PREFIX + params.name),
  });

  r.delete('/v1/secret-storage/secrets/:name', {
    tag,
    summary: 'Delete a stored secret (needs a recent password check)',
    params: SecretParams,
    reply: Empty,
    guarded: true,
    handler: async ({ params }: { params: { name: string } }, auth) => {
      // A secret may be the only way into a backup or an identity key: a bearer token alone must not wipe it.
      requireFreshAuth(ctx, auth);
      if (!(await ctx.store.deleteAccountData(auth.account.id, SECRET_PREFIX + params.name))) {
        throw new LatchkeyError('LK_SECRET_NOT_FOUND');
      }
      return {};
    },
  });
}
