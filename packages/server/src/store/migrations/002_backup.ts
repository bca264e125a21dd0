import type { Kysely } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/** Key backup versions and keys (Matrix-shaped), and per-account data for secret storage. */
export async function up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> {
  await db.schema
    .createTable('backup_versions')
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('algorithm', 'text', (c) => c.notNull())
    .addColumn('auth_data', 'text', (c) => c.notNull())
    .addColumn('etag', t.time, (c) => c.notNull())
    .addColumn('key_count', 'integer', (c) => c.notNull())
    .addColumn('deleted', 'integer', (c) => c.notNull())
    .addColumn('created_at', t.time, (c) => c.notNull())
    .addPrimaryKeyConstraint('backup_versions_pk', ['account_id', 'version'])
    .execute();

  await db.schema
    .createTable('backup_keys')
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text', (c) => c.notNull())
    .addColumn('first_message_index', t.time, (c) => c.notNull())
    .addColumn('forwarded_count', 'integer', (c) => c.notNull())
    .addColumn('is_verified', 'integer', (c) => c.notNull())
    .addColumn('session_data', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('backup_keys_pk', ['account_id', 'version', 'room_id', 'session_id'])
    .addForeignKeyConstraint(
      'backup_keys_version_fk',
      ['account_id', 'version'],
      'backup_versions',
      ['account_id', 'version'],
      (c) => c.onDelete('cascade'),
    )
    .execute();

  await db.schema
    .createTable('account_data')
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('account_data_pk', ['account_id', 'type'])
    .execute();
}
