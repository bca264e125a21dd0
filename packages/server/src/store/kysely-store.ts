import type { Kysely, Transaction } from 'kysely';
import type { Connection } from './database.js';
import { migrateToLatest } from './migrate.js';
import type { CodeRow, Database, ResetTokenRow } from './schema.js';
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
    await this.db
      .updateTable('accounts')
      .set({
        opaque_record: change.opaqueRecord,
        wrap_kb: change.wrapKB,
        password_changed_at: change.passwordChangedAt,
        ...(change.keysChangedAt === undefined ? {} : { keys_changed_at: change.keysChangedAt }),
      })
      .where('id', '=', id)
      .execute();
  }

  async deleteAccount(id: string, email: string) {
    await this.transaction(async (tx) => {
      const db = (tx as KyselyStore).db;
      await db.deleteFrom('sessions').where('account_id', '=', id).execute();
      await db.deleteFrom('reset_tokens').where('account_id', '=', id).execute();
      await db.deleteFrom('login_attempts').where('account_id', '=', id).execute();
      await db.deleteFrom('login_attempts').where('email', '=', email).execute();
      await db.deleteFrom('codes').where('email', '=', email).execute();
      await db.deleteFrom('rate_limits').where('bucket', 'like', `%:${email}`).execute();
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

  async purgeExpired(now: number) {
    await this.db.deleteFrom('login_attempts').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('codes').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('reset_tokens').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('sessions').where('expires_at', '<=', now).execute();
  }

  async close() {
    await this.root.destroy();
  }
}
