import type { Kysely } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/**
 * Login attempts remember the credentials they were begun under, and reset tokens are indexed by the
 * account a password change deletes them for.
 */
export async function up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> {
  // The account's password_changed_at when the attempt read its OPAQUE record; null for an unknown
  // email. Attempts begun before this migration have none, so they cannot finish (they live 2 minutes).
  await db.schema.alterTable('login_attempts').addColumn('password_changed_at', t.time).execute();

  // updateCredentials and deleteAccount delete reset tokens by account. Not indexed on purpose:
  // login_attempts.account_id and rate_limits.window_start. Every login writes both tables, so an index
  // there costs each login, while the deletes that would use them are rare (password changes) or run
  // once a minute in the background, over tables that stay small (attempts live two minutes).
  await db.schema.createIndex('reset_tokens_account').on('reset_tokens').column('account_id').execute();
}
