import type { Kysely, Transaction } from 'kysely';
import type { Connection } from './database.js';
import { migrateToLatest } from './migrate.js';
import { accountRateLimitBuckets } from './rate-limit-buckets.js';
import type { AccountDataRow, BackupKeyRow, BackupVersionRow, CodeRow, Database, ResetTokenRow } from './schema.js';
import type { Store } from './store.js';

type Executor = Kysely<Database> | Transaction<Database>;

/** Opens the store on a connection and brings its schema up to date. */
export async function openStore(connection: Connection): Promise<Store> {
  await migrateToLatest(connection.db as Kysely<unknown>, connection.dialect);
  return new KyselyStore(connection.db, connection.db);
}

/** The {@link Store} over Kysely: identical SQL for SQLite and PostgreSQL. */
class KyselyStore implements Store {
  constructor(
    private readonly root: Kysely<Database>,
    private readonly db: Executor,
  ) {}

  transaction<T>(work: (tx: Store) => Promise<T>): Promise<T> {
    if (this.db !== this.root) return work(this); // already inside one: nest by joining it
    return this.root.transaction().execute((trx) => work(new KyselyStore(this.root, trx)));
  }

  findAccountByEmail(email: string) {
    return this.db.selectFrom('accounts').selectAll().where('email', '=', email).executeTakeFirst();
  }

  findAccountById(id: string) {
    return this.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async insertAccount(row: Database['accounts']) {
    await this.db.insertInto('accounts').values(row).execute();
  }

  async markAccountVerified(id: string, at: number) {
    await this.db.updateTable('accounts').set({ verified_at: at }).where('id', '=', id).execute();
  }

  async updateCredentials(
    id: string,
    change: { opaqueRecord: Uint8Array; wrapKB: Uint8Array; passwordChangedAt: number; keysChangedAt?: number },
  ) {
    await this.transaction(async (tx) => {
      const db = (tx as KyselyStore).db;
      const updated = await db
        .updateTable('accounts')
        .set({
          opaque_record: change.opaqueRecord,
          wrap_kb: change.wrapKB,
          password_changed_at: change.passwordChangedAt,
          ...(change.keysChangedAt === undefined ? {} : { keys_changed_at: change.keysChangedAt }),
        })
        .where('id', '=', id)
        .returning('email')
        .executeTakeFirst();
      // A login begun under the old record would otherwise finish under it (KE3 after the change),
      // and an unused reset token or reset code would allow a second reset: all die with the old password.
      await db.deleteFrom('login_attempts').where('account_id', '=', id).execute();
      await db.deleteFrom('reset_tokens').where('account_id', '=', id).execute();
      if (updated !== undefined) {
        await db.deleteFrom('codes').where('email', '=', updated.email).where('purpose', '=', 'reset').execute();
      }
    });
  }

  async deleteAccount(id: string, email: string, options: { keepRateLimits?: boolean } = {}) {
    await this.transaction(async (tx) => {
      const db = (tx as KyselyStore).db;
      await db.deleteFrom('backup_keys').where('account_id', '=', id).execute();
      await db.deleteFrom('backup_versions').where('account_id', '=', id).execute();
      await db.deleteFrom('account_data').where('account_id', '=', id).execute();
      await db.deleteFrom('sessions').where('account_id', '=', id).execute();
      await db.deleteFrom('reset_tokens').where('account_id', '=', id).execute();
      await db.deleteFrom('login_attempts').where('account_id', '=', id).execute();
      await db.deleteFrom('login_attempts').where('email', '=', email).execute();
      await db.deleteFrom('codes').where('email', '=', email).execute();
      if (options.keepRateLimits !== true) {
        await db.deleteFrom('rate_limits').where('bucket', 'in', accountRateLimitBuckets(email)).execute();
      }
      await db.deleteFrom('accounts').where('id', '=', id).execute();
    });
  }

  async insertSession(row: Database['sessions']) {
    await this.db.insertInto('sessions').values(row).execute();
  }

  findSessionByTokenHash(tokenHash: Uint8Array) {
    return this.db.selectFrom('sessions').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }

  async touchSession(id: string, at: number) {
    await this.db.updateTable('sessions').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  async setSessionAuthenticatedAt(id: string, at: number) {
    await this.db
      .updateTable('sessions')
      .set({ authenticated_at: at, last_used_at: at })
      .where('id', '=', id)
      .execute();
  }

  listSessions(accountId: string) {
    return this.db
      .selectFrom('sessions')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
  }

  async deleteSession(accountId: string, sessionId: string) {
    const result = await this.db
      .deleteFrom('sessions')
      .where('account_id', '=', accountId)
      .where('id', '=', sessionId)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async deleteSessions(accountId: string, keepId?: string) {
    let query = this.db.deleteFrom('sessions').where('account_id', '=', accountId);
    if (keepId !== undefined) query = query.where('id', '!=', keepId);
    const result = await query.executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async insertLoginAttempt(row: Database['login_attempts']) {
    await this.db.insertInto('login_attempts').values(row).execute();
  }

  async takeLoginAttempt(id: string, now: number) {
    const row = await this.db.deleteFrom('login_attempts').where('id', '=', id).returningAll().executeTakeFirst();
    return row !== undefined && row.expires_at > now ? row : undefined;
  }

  async replaceCode(row: CodeRow) {
    await this.transaction(async (tx) => {
      const db = (tx as KyselyStore).db;
      await db.deleteFrom('codes').where('email', '=', row.email).where('purpose', '=', row.purpose).execute();
      await db.insertInto('codes').values(row).execute();
    });
  }

  findCode(email: string, purpose: CodeRow['purpose']) {
    return this.db
      .selectFrom('codes')
      .selectAll()
      .where('email', '=', email)
      .where('purpose', '=', purpose)
      .executeTakeFirst();
  }

  async recordCodeAttempt(id: string) {
    await this.db
      .updateTable('codes')
      .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
      .where('id', '=', id)
      .execute();
  }

  async deleteCode(id: string) {
    const result = await this.db.deleteFrom('codes').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async insertResetToken(row: ResetTokenRow) {
    await this.db.insertInto('reset_tokens').values(row).execute();
  }

  async takeResetToken(tokenHash: Uint8Array, now: number) {
    const row = await this.db
      .deleteFrom('reset_tokens')
      .where('token_hash', '=', tokenHash)
      .returningAll()
      .executeTakeFirst();
    return row !== undefined && row.expires_at > now ? row : undefined;
  }

  findResetToken(tokenHash: Uint8Array, now: number) {
    return this.db
      .selectFrom('reset_tokens')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .where('expires_at', '>', now)
      .executeTakeFirst();
  }

  async hitRateLimit(bucket: string, now: number, windowMs: number) {
    const windowStart = now - (now % windowMs);
    const row = await this.db
      .insertInto('rate_limits')
      .values({ bucket, window_start: windowStart, hits: 1 })
      .onConflict((oc) =>
        oc.column('bucket').doUpdateSet((eb) => ({
          hits: eb
            .case()
            .when('rate_limits.window_start', '=', windowStart)
            .then(eb('rate_limits.hits', '+', 1))
            .else(1)
            .end(),
          window_start: windowStart,
        })),
      )
      .returning('hits')
      .executeTakeFirstOrThrow();
    return Number(row.hits);
  }

  async clearRateLimit(bucket: string) {
    await this.db.deleteFrom('rate_limits').where('bucket', '=', bucket).execute();
  }

  async getServerSecret(name: string) {
    const row = await this.db
      .selectFrom('server_secrets')
      .select('value_sealed')
      .where('name', '=', name)
      .executeTakeFirst();
    return row?.value_sealed;
  }

  async putServerSecretOnce(name: string, value: Uint8Array) {
    await this.db
      .insertInto('server_secrets')
      .values({ name, value_sealed: value })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const stored = await this.getServerSecret(name);
    if (stored === undefined) throw new Error(`server secret ${name} vanished`);
    return stored;
  }

  async createBackupVersion(row: Omit<BackupVersionRow, 'version' | 'etag' | 'key_count' | 'deleted'>) {
    return this.transaction(async (tx) => {
      const db = (tx as KyselyStore).db;
      const last = await db
        .selectFrom('backup_versions')
        .select((eb) => eb.fn.max('version').as('max'))
        .where('account_id', '=', row.account_id)
        .executeTakeFirst();
      const version = Number(last?.max ?? 0) + 1;
      await db
        .insertInto('backup_versions')
        .values({ ...row, version, etag: 0, key_count: 0, deleted: 0 })
        .execute();
      return version;
    });
  }

  findBackupVersion(accountId: string, version?: number) {
    let query = this.db
      .selectFrom('backup_versions')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('deleted', '=', 0);
    query = version === undefined ? query.orderBy('version', 'desc').limit(1) : query.where('version', '=', version);
    return query.executeTakeFirst();
  }

  async updateBackupAuthData(accountId: string, version: number, authData: string) {
    await this.db
      .updateTable('backup_versions')
      .set({ auth_data: authData })
      .where('account_id', '=', accountId)
      .where('version', '=', version)
      .execute();
  }

  async deleteBackupVersion(accountId: string, version: number) {
    return this.transaction(async (tx) => {
      const db = (tx as KyselyStore).db;
      await db.deleteFrom('backup_keys').where('account_id', '=', accountId).where('version', '=', version).execute();
      const result = await db
        .updateTable('backup_versions')
        .set({ deleted: 1, key_count: 0 })
        .where('account_id', '=', accountId)
        .where('version', '=', version)
        .where('deleted', '=', 0)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    });
  }

  async backupVersionExisted(accountId: string, version: number) {
    const row = await this.db
      .selectFrom('backup_versions')
      .select('version')
      .where('account_id', '=', accountId)
      .where('version', '=', version)
      .executeTakeFirst();
    return row !== undefined;
  }

  async bumpBackupVersion(accountId: string, version: number, etagDelta: number, countDelta: number) {
    await this.db
      .updateTable('backup_versions')
      .set((eb) => ({ etag: eb('etag', '+', etagDelta), key_count: eb('key_count', '+', countDelta) }))
      .where('account_id', '=', accountId)
      .where('version', '=', version)
      .execute();
  }

  async findBackupKeys(accountId: string, version: number, pairs: Array<[string, string]>) {
    if (pairs.length === 0) return [];
    const rows: BackupKeyRow[] = [];
    // Row-value IN lists work on both backends; chunks keep each statement under SQLite's variable limit.
    for (let i = 0; i < pairs.length; i += 400) {
      const chunk = pairs.slice(i, i + 400);
      rows.push(
        ...(await this.db
          .selectFrom('backup_keys')
          .selectAll()
          .where('account_id', '=', accountId)
          .where('version', '=', version)
          .where((eb) =>
            eb(
              eb.refTuple('room_id', 'session_id'),
              'in',
              chunk.map(([room, session]) => eb.tuple(room, session)),
            ),
          )
          .execute()),
      );
    }
    return rows;
  }

  async putBackupKeys(rows: BackupKeyRow[]) {
    for (let i = 0; i < rows.length; i += 100) {
      await this.db
        .insertInto('backup_keys')
        .values(rows.slice(i, i + 100))
        .onConflict((oc) =>
          oc.columns(['account_id', 'version', 'room_id', 'session_id']).doUpdateSet((eb) => ({
            first_message_index: eb.ref('excluded.first_message_index'),
            forwarded_count: eb.ref('excluded.forwarded_count'),
            is_verified: eb.ref('excluded.is_verified'),
            session_data: eb.ref('excluded.session_data'),
          })),
        )
        .execute();
    }
  }

  pageBackupKeys(accountId: string, version: number, after: [string, string] | undefined, limit: number) {
    let query = this.db
      .selectFrom('backup_keys')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('version', '=', version);
    if (after !== undefined) {
      query = query.where((eb) => eb(eb.refTuple('room_id', 'session_id'), '>', eb.tuple(after[0], after[1])));
    }
    return query.orderBy('room_id').orderBy('session_id').limit(limit).execute();
  }

  async deleteBackupKeys(accountId: string, version: number, roomId?: string, sessionId?: string) {
    let query = this.db.deleteFrom('backup_keys').where('account_id', '=', accountId).where('version', '=', version);
    if (roomId !== undefined) query = query.where('room_id', '=', roomId);
    if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
    const result = await query.executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async getAccountData(accountId: string, type: string) {
    const row = await this.db
      .selectFrom('account_data')
      .select('content')
      .where('account_id', '=', accountId)
      .where('type', '=', type)
      .executeTakeFirst();
    return row?.content;
  }

  async listAccountData(accountId: string, typePrefix: string) {
    // An account has a handful of rows; filtering here avoids LIKE's escaping rules differing by backend.
    const rows = await this.db
      .selectFrom('account_data')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('type')
      .execute();
    return rows.filter((row) => row.type.startsWith(typePrefix));
  }

  async putAccountData(row: AccountDataRow) {
    await this.db
      .insertInto('account_data')
      .values(row)
      .onConflict((oc) => oc.columns(['account_id', 'type']).doUpdateSet({ content: row.content }))
      .execute();
  }

  async deleteAccountData(accountId: string, type: string) {
    const result = await this.db
      .deleteFrom('account_data')
      .where('account_id', '=', accountId)
      .where('type', '=', type)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async purgeExpired(now: number, rateLimitWindowMs: number) {
    // A bucket whose window ended counts from 1 again on its next hit, so its row holds nothing.
    await this.db
      .deleteFrom('rate_limits')
      .where('window_start', '<=', now - rateLimitWindowMs)
      .execute();
    await this.db.deleteFrom('login_attempts').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('codes').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('reset_tokens').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('sessions').where('expires_at', '<=', now).execute();
  }

  async close() {
    await this.root.destroy();
  }
}
