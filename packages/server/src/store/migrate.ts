import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import * as m001 from './migrations/001_accounts.js';
import * as m002 from './migrations/002_backup.js';
import * as m003 from './migrations/003_login_credentials_and_indexes.js';
import * as m004 from './migrations/004_device_tokens.js';
import * as m005 from './migrations/005_credential_identifiers.js';
import * as m006 from './migrations/006_oauth.js';
import * as m007 from './migrations/007_transparency_log.js';

/** Column types that differ between the two backends; migrations take them instead of naming SQL types. */
export interface ColumnTypes {
  bytes: 'blob' | 'bytea';
  time: 'integer' | 'bigint';
}

export type Dialect = 'sqlite' | 'postgres';

/** One numbered list of migrations for both backends (never edit a shipped one; add the next number). */
const MIGRATIONS: Record<string, { up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> }> = {
  '001_accounts': m001,
  '002_backup': m002,
  '003_login_credentials_and_indexes': m003,
  '004_device_tokens': m004,
  '005_credential_identifiers': m005,
  '006_oauth': m006,
  '007_transparency_log': m007,
};

export async function migrateToLatest(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const types: ColumnTypes =
    dialect === 'postgres' ? { bytes: 'bytea', time: 'bigint' } : { bytes: 'blob', time: 'integer' };
  const provider: MigrationProvider = {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const [name, migration] of Object.entries(MIGRATIONS)) out[name] = { up: (d) => migration.up(d, types) };
      return out;
    },
  };
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error !== undefined || failed !== undefined) {
    throw new Error(`migration ${failed?.migrationName ?? ''} failed`, { cause: error });
  }
}
