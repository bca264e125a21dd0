import type { Kysely } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/**
 * Login attempts remember the credentials they were begun under, and the deletes and sweeps that run
 * on every password change and every minute get the indexes they search by.
 */
export async function up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> {
  // The account's password_changed_at when the attempt read its OPAQUE record; null for an unknown
  // email. Attempts begun before this migration have none, so they cannot finish (they live 2 minutes).
  await db.schema.alterTable('login_attempts').addColumn('password_changed_at', t.time).execute();

  // updateCredentials and deleteAccount delete by account; purgeExpired sweeps rate limits by window.
  await db.schema.createIndex('login_attempts_account').on('login_attempts').column('account_id').execute();
  await db.schema.createIndex('reset_tokens_account').on('reset_tokens').column('account_id').execute();
  await db.schema.createIndex('rate_limits_window').on('rate_limits').column('window_start').execute();
}
