import type { Kysely } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/**
 * Device tokens (OWASP "device cookies": a login that presents one passes the limits strangers can
 * fill), and what a login attempt counted, so that its successful finish can take the count back.
 */
export async function up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> {
  await db.schema
    .createTable('device_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    // SHA-256 of the token: the token itself is never stored.
    .addColumn('token_hash', t.bytes, (c) => c.notNull().unique())
    // The session the login that issued it made: revoking that session revokes the token.
    .addColumn('session_id', 'text')
    .addColumn('created_at', t.time, (c) => c.notNull())
    .addColumn('expires_at', t.time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('device_tokens_account').on('device_tokens').column('account_id').execute();

  // Attempts begun before this migration have neither: they finish as before, with nothing to refund.
  await db.schema.alterTable('login_attempts').addColumn('device_token_id', 'text').execute();
  await db.schema.alterTable('login_attempts').addColumn('rate_limit_hits', 'text').execute();
}
