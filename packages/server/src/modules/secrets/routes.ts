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
import type { Store } from '../../store/store.js';
import { type AuthenticatedSession, requireFreshAuth } from '../accounts/service.js';

/**
 * The secrets module (Matrix "Secrets"): storage-key descriptions (public: name, passphrase
 * parameters, key check) and secrets encrypted under those keys. The server holds ciphertext only.
 */
const KEY_PREFIX = 'ssss.key.';
const SECRET_PREFIX = 'ssss.secret.';
const DEFAULT_KEY = 'ssss.default_key';

async function requireKeys(store: Store, auth: AuthenticatedSession, keyIds: string[]) {
  for (const keyId of keyIds) {
    if ((await store.getAccountData(auth.account.id, KEY_PREFIX + keyId)) === undefined) {
      throw new LatchkeyError('LK_SECRET_NOT_FOUND', `No storage key ${keyId}: describe it first.`);
    }
  }
}

async function readJson<T>(ctx: ServerContext, auth: AuthenticatedSession, type: string): Promise<T> {
  const content = await ctx.store.getAccountData(auth.account.id, type);
  if (content === undefined) throw new LatchkeyError('LK_SECRET_NOT_FOUND');
  return JSON.parse(content) as T;
}

/**
 * Stores `value` under `type`. Replacing a different value destroys it as surely as a delete does (a
 * secret or key description may be the only way into a backup or an identity key), so it needs a recent
 * password check, as deletes do (issue 8): `LK_REAUTH_REQUIRED`. A bearer token alone may still create
 * a value that is not there yet (sign-up, a first backup) and write the very bytes already stored (a
 * retry), since neither loses anything. "The very bytes" means the stored JSON text: the same object
 * sent with its members in another order is a replacement. `keyIds` must all be described.
 *
 * The existence check and the write are one transaction, which holds the account's row lock on
 * PostgreSQL and runs alone on SQLite (kysely-store.ts): two racing writes cannot both find nothing
 * there and the second silently replace the first.
 */
async function putAccountData(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  type: string,
  value: unknown,
  keyIds: string[] = [],
): Promise<void> {
  const content = JSON.stringify(value);
  await ctx.store.transaction(async (tx) => {
    await requireKeys(tx, auth, keyIds);
    const stored = await tx.getAccountData(auth.account.id, type);
    if (stored === content) return;
    if (stored !== undefined) requireFreshAuth(ctx, auth);
    await tx.putAccountData({ account_id: auth.account.id, type, content });
  });
}

export async function secretsRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const r = route(app, ctx);
  const tag = 'secrets';

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
    summary: 'Describe a storage key (never the key itself); changing a description needs a recent password check',
    params: StorageKeyParams,
    body: StorageKeyDescription,
    reply: Empty,
    guarded: true,
    handler: async ({ params, body }: { params: { keyId: string }; body: StorageKeyDescriptionBody }, auth) => {
      await putAccountData(ctx, auth, KEY_PREFIX + params.keyId, body);
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
    summary: 'Choose the default storage key; changing it needs a recent password check',
    body: DefaultStorageKey,
    reply: Empty,
    guarded: true,
    handler: async ({ body }: { body: { key: string } }, auth) => {
      await putAccountData(ctx, auth, DEFAULT_KEY, body, [body.key]);
      return {};
    },
  });

  r.put('/v1/secret-storage/secrets/:name', {
    tag,
    summary: 'Store a secret, encrypted under one or more storage keys; replacing one needs a recent password check',
    params: SecretParams,
    body: SecretItem,
    reply: Empty,
    guarded: true,
    handler: async ({ params, body }: { params: { name: string }; body: SecretItemBody }, auth) => {
      await putAccountData(ctx, auth, SECRET_PREFIX + params.name, body, Object.keys(body.encrypted));
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
