import { type Kysely, sql } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/**
 * Each account's OPAQUE credential identifier (issue 8): random from now on, fixed when a record is
 * made, so no stranger can have the server evaluate an account's OPRF key by naming its email. An
 * account made before this migration keeps its email: its record was made under it, and nothing
 * evaluates under an email any more but that account's own login.
 */
export async function up(db: Kysely<unknown>, _t: ColumnTypes): Promise<void> {
  // The default only lets the column be added to existing rows; every insert names the identifier.
  await db.schema
    .alterTable('accounts')
    .addColumn('credential_id', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await sql`update accounts set credential_id = email`.execute(db);
  // Two accounts under one identifier would share an OPRF key: the index makes that impossible.
  await db.schema.createIndex('accounts_credential_id').on('accounts').column('credential_id').unique().execute();
}
