import type { Kysely } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/** Accounts, sessions, login attempts, one-time codes, reset tokens, rate limits, server secrets. */
export async function up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text', (c) => c.notNull().unique())
    .addColumn('verified_at', t.time)
    .addColumn('created_at', t.time, (c) => c.notNull())
    .addColumn('opaque_record', t.bytes, (c) => c.notNull())
    .addColumn('wrap_kb', t.bytes, (c) => c.notNull())
    .addColumn('ka_sealed', t.bytes, (c) => c.notNull())
    .addColumn('keys_changed_at', t.time, (c) => c.notNull())
    .addColumn('password_changed_at', t.time, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('token_hash', t.bytes, (c) => c.notNull().unique())
    .addColumn('device_name', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('created_at', t.time, (c) => c.notNull())
    .addColumn('last_used_at', t.time, (c) => c.notNull())
    .addColumn('authenticated_at', t.time, (c) => c.notNull())
    .addColumn('expires_at', t.time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sessions_account').on('sessions').column('account_id').execute();

  await db.schema
    .createTable('login_attempts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text')
    .addColumn('session_id', 'text')
    .addColumn('state_sealed', t.bytes, (c) => c.notNull())
    .addColumn('expires_at', t.time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('login_attempts_expiry').on('login_attempts').column('expires_at').execute();

  await db.schema
    .createTable('codes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('code_mac', t.bytes, (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('expires_at', t.time, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('codes_email_purpose').on('codes').columns(['email', 'purpose']).execute();

  await db.schema
    .createTable('reset_tokens')
    .addColumn('token_hash', t.bytes, (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('expires_at', t.time, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('rate_limits')
    .addColumn('bucket', 'text', (c) => c.primaryKey())
    .addColumn('window_start', t.time, (c) => c.notNull())
    .addColumn('hits', 'integer', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('server_secrets')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value_sealed', t.bytes, (c) => c.notNull())
    .execute();
}
