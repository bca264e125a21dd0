import type { Kysely } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/**
 * The OAuth server (issue 9). `oidc_payloads` is oidc-provider's adapter contract as one table: every
 * model (codes, grants, tokens, interactions, sessions, relayed keys_jwe) keyed by (model, id), with
 * the lookups the contract makes (grant id, uid, user code) indexed. Clients and scopes are registered
 * by an admin; key rotation secrets are random per (account, scope), as Firefox Accounts keeps them.
 */
export async function up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> {
  await db.schema
    .createTable('oidc_payloads')
    .addColumn('model', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('uid', 'text')
    .addColumn('user_code', 'text')
    // The grant's subject, so a user can list and revoke their grants.
    .addColumn('account_id', 'text')
    .addColumn('expires_at', t.time)
    .addColumn('consumed_at', t.time)
    .addPrimaryKeyConstraint('oidc_payloads_pk', ['model', 'id'])
    .execute();
  for (const column of ['grant_id', 'uid', 'user_code', 'account_id', 'expires_at'] as const) {
    await db.schema.createIndex(`oidc_payloads_${column}`).on('oidc_payloads').column(column).execute();
  }

  await db.schema
    .createTable('oauth_clients')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    // JSON array of exact redirect URIs.
    .addColumn('redirect_uris', 'text', (c) => c.notNull())
    .addColumn('created_at', t.time, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('oauth_scopes')
    .addColumn('scope', 'text', (c) => c.primaryKey())
    // 'kA', 'kB', or null for a scope that carries no key.
    .addColumn('key_class', 'text')
    // JSON array of the client ids that may ask for it.
    .addColumn('clients', 'text', (c) => c.notNull())
    .addColumn('created_at', t.time, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('oauth_key_rotation')
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('secret', t.bytes, (c) => c.notNull())
    .addPrimaryKeyConstraint('oauth_key_rotation_pk', ['account_id', 'scope'])
    .execute();
}
