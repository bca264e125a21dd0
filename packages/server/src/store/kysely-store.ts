import { createHash } from 'node:crypto';
import { LatchkeyError } from '@latchkey/core';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { Connection } from './database.js';
import { KyselyLogStore } from './log-store.js';
import { type Dialect, migrateToLatest } from './migrate.js';
import { KyselyOauthStore } from './oauth-store.js';
import { accountRateLimitBuckets } from './rate-limit-buckets.js';
import type {
  AccountDataRow,
  BackupKeyRow,
  BackupVersionRow,
  CodeRow,
  Database,
  DeviceTokenRow,
  ResetTokenRow,
} from './schema.js';
import type { Store } from './store.js';

type Executor = Kysely<Database> | Transaction<Database>;

/** How many times a transaction runs when the database aborts it as a deadlock or a serialization failure. */
const TRANSACTION_ATTEMPTS = 5;

/**
 * Errors after which the same work may simply run again: PostgreSQL's serialization_failure (40001) and
 * deadlock_detected (40P01), and SQLite's busy (another process held the file past the busy timeout).
 * Nothing of the failed attempt was kept, so running it again is safe.
 */
const TRANSIENT = new Set(['40001', '40P01', 'SQLITE_BUSY']);

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** What a client of a deleted account gets: the account a write was for is gone (deleted meanwhile). */
function accountGone(): LatchkeyError {
  return new LatchkeyError('LK_UNAUTHORIZED', 'The account no longer exists.');
}

/**
 * A constraint that a race can still meet, as the client should hear it. The locks below keep these
 * from happening; this is the answer if one does anyway, instead of a 500: a second account for an
 * email is a taken email, and a row for an account that is gone (a foreign key) is a deleted account.
 */
function constraintConflict(error: unknown): LatchkeyError | undefined {
  const code = errorCode(error);
  const { constraint, message } = error as { constraint?: unknown; message?: unknown };
  if (
    (code === '23505' && constraint === 'accounts_email_key') ||
    (code === 'SQLITE_CONSTRAINT_UNIQUE' && typeof message === 'string' && message.includes('accounts.email'))
  ) {
    return new LatchkeyError('LK_EMAIL_TAKEN');
  }
  if (code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return accountGone();
  return undefined;
}

/** A short random pause before running a transaction again, growing with each attempt, so the racers part. */
function backoff(attempt: number): Promise<void> {
  const ms = attempt * (5 + Math.random() * 20);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The advisory lock key of an email: 64 bits of a hash, as PostgreSQL's bigint (a collision only serialises more). */
function emailLockKey(email: string): string {
  const digest = createHash('sha256').update(`latchkey/email/${email}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/** Opens the store on a connection and brings its schema up to date. */
export async function openStore(connection: Connection): Promise<Store> {
  await migrateToLatest(connection.db as Kysely<unknown>, connection.dialect);
  return new KyselyStore(connection.db, connection.db, connection.dialect, undefined);
}

/**
 * The {@link Store} over Kysely: identical SQL for SQLite and PostgreSQL.
 *
 * Concurrency (issue 7). PostgreSQL runs transactions at READ COMMITTED, so a transaction that reads,
 * decides and writes could act on a read another one has made false meanwhile. The rule that prevents
 * it, in one place: inside a transaction, the first touch of an account's rows (a read or a write) locks
 * the account's row (`FOR NO KEY UPDATE`; deleting the account takes `FOR UPDATE`), and looking an
 * account up by email takes an advisory lock on the email. So every transaction on one account runs
 * after the other, and a deletion waits for them (or they find the account gone: `LK_UNAUTHORIZED`).
 * Locks are taken in one order, email before account, so transactions on one account cannot deadlock;
 * a write made outside a transaction runs in one of its own under the same lock. Deadlocks and
 * serialization failures that happen anyway are run again, a bounded number of times.
 *
 * SQLite needs none of the locks: Kysely runs its one connection's transactions one at a time, and each
 * begins IMMEDIATE (database.ts), so the checks that the accounts still exist are all that runs there.
 */
class KyselyStore implements Store {
  constructor(
    private readonly root: Kysely<Database>,
    private readonly db: Executor,
    private readonly dialect: Dialect,
    /** Inside a transaction: the locks it holds (`write:<account>`, `delete:<account>`, `email:<email>`). */
    private readonly held: Set<string> | undefined,
  ) {
    this.oauth = new KyselyOauthStore(db);
    this.log = new KyselyLogStore(db, dialect);
  }

  readonly oauth: KyselyOauthStore;
  readonly log: KyselyLogStore;

  async transaction<T>(work: (tx: Store) => Promise<T>): Promise<T> {
    if (this.held !== undefined) return work(this); // already inside one: nest by joining it
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.root
          .transaction()
          .execute((trx) => work(new KyselyStore(this.root, trx, this.dialect, new Set())));
      } catch (error) {
        if (attempt < TRANSACTION_ATTEMPTS && TRANSIENT.has(errorCode(error) ?? '')) {
          await backoff(attempt);
          continue;
        }
        throw constraintConflict(error) ?? error;
      }
    }
  }

  /**
   * Inside a transaction, locks the account's row until the transaction ends and says whether the
   * account exists; outside one, does nothing (a lone read needs no lock) and says true.
   */
  private async lockAccount(accountId: string, mode: 'write' | 'delete' = 'write'): Promise<boolean> {
    const held = this.held;
    if (held === undefined || held.has(`${mode}:${accountId}`)) return true;
    let query = this.db.selectFrom('accounts').select('id').where('id', '=', accountId);
    if (this.dialect === 'postgres') query = mode === 'delete' ? query.forUpdate() : query.forNoKeyUpdate();
    if ((await query.executeTakeFirst()) === undefined) return false;
    held.add(`${mode}:${accountId}`);
    if (mode === 'delete') held.add(`write:${accountId}`);
    return true;
  }

  /** Inside a transaction on PostgreSQL, holds the email's advisory lock until the transaction ends. */
  private async lockEmail(email: string): Promise<void> {
    const held = this.held;
    if (held === undefined || this.dialect !== 'postgres' || held.has(`email:${email}`)) return;
    await sql`select pg_advisory_xact_lock(${emailLockKey(email)}::bigint)`.execute(this.db);
    held.add(`email:${email}`);
  }

  /**
   * Runs a write of accounts' rows in a transaction (the current one, or its own) holding their locks;
   * `LK_UNAUTHORIZED` if one of them is gone, rather than a foreign-key error.
   */
  private write<T>(accountIds: string | readonly string[], work: (db: Executor) => Promise<T>): Promise<T> {
    const ids = [...new Set(typeof accountIds === 'string' ? [accountIds] : accountIds)].sort();
    return this.transaction(async (tx) => {
      const store = tx as KyselyStore;
      for (const id of ids) if (!(await store.lockAccount(id))) throw accountGone();
      return work(store.db);
    });
  }

  async findAccountByEmail(email: string) {
    await this.lockEmail(email);
    return this.db.selectFrom('accounts').selectAll().where('email', '=', email).executeTakeFirst();
  }

  async findAccountById(id: string) {
    await this.lockAccount(id);
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
    change: {
      credentialId: string;
      opaqueRecord: Uint8Array;
      wrapKB: Uint8Array;
      passwordChangedAt: number;
      keysChangedAt?: number;
      keepDeviceTokensOf?: string;
    },
  ) {
    await this.write(id, async (db) => {
      const updated = await db
        .updateTable('accounts')
        .set({
          credential_id: change.credentialId,
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
      // A device token proves an earlier login under the old password; only the changing session's stays.
      let devices = db.deleteFrom('device_tokens').where('account_id', '=', id);
      const keep = change.keepDeviceTokensOf;
      if (keep !== undefined)
        devices = devices.where((eb) => eb.or([eb('session_id', 'is', null), eb('session_id', '!=', keep)]));
      await devices.execute();
      if (updated !== undefined) {
        await db.deleteFrom('codes').where('email', '=', updated.email).where('purpose', '=', 'reset').execute();
      }
    });
  }

  async deleteAccount(id: string, email: string, options: { keepRateLimits?: boolean } = {}) {
    return this.transaction(async (tx) => {
      const store = tx as KyselyStore;
      // Waits for every transaction on the account (email first, the one lock order); one that comes
      // later finds the account gone.
      await store.lockEmail(email);
      await store.lockAccount(id, 'delete');
      const db = store.db;
      await db.deleteFrom('backup_keys').where('account_id', '=', id).execute();
      await db.deleteFrom('backup_versions').where('account_id', '=', id).execute();
      await db.deleteFrom('account_data').where('account_id', '=', id).execute();
      // An app's grant must not outlive the account: its refresh token would renew access for 30 days.
      await store.oauth.revokeAccount(id);
      await db.deleteFrom('device_tokens').where('account_id', '=', id).execute();
      await db.deleteFrom('sessions').where('account_id', '=', id).execute();
      await db.deleteFrom('reset_tokens').where('account_id', '=', id).execute();
      await db.deleteFrom('login_attempts').where('account_id', '=', id).execute();
      await db.deleteFrom('login_attempts').where('email', '=', email).execute();
      await db.deleteFrom('codes').where('email', '=', email).execute();
      if (options.keepRateLimits !== true) {
        await db.deleteFrom('rate_limits').where('bucket', 'in', accountRateLimitBuckets(email)).execute();
      }
      const deleted = await db.deleteFrom('accounts').where('id', '=', id).executeTakeFirst();
      return Number(deleted.numDeletedRows) > 0;
    });
  }

  async insertSession(row: Database['sessions']) {
    await this.write(row.account_id, (db) => db.insertInto('sessions').values(row).execute());
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

  async listSessions(accountId: string) {
    await this.lockAccount(accountId);
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

  async insertDeviceToken(row: DeviceTokenRow, keep: number) {
    await this.transaction(async (tx) => {
      const db = (tx as KyselyStore).db;
      await db.insertInto('device_tokens').values(row).execute();
      const newest = db
        .selectFrom('device_tokens')
        .select('id')
        .where('account_id', '=', row.account_id)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(keep);
      await db
        .deleteFrom('device_tokens')
        .where('account_id', '=', row.account_id)
        .where('id', 'not in', newest)
        .execute();
    });
  }

  findDeviceToken(tokenHash: Uint8Array, now: number) {
    return this.db
      .selectFrom('device_tokens')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .where('expires_at', '>', now)
      .executeTakeFirst();
  }

  async deleteDeviceToken(id: string) {
    await this.db.deleteFrom('device_tokens').where('id', '=', id).execute();
  }

  async deleteSessionDeviceTokens(accountId: string, sessionId: string) {
    await this.db
      .deleteFrom('device_tokens')
      .where('account_id', '=', accountId)
      .where('session_id', '=', sessionId)
      .execute();
  }

  async replaceCode(row: CodeRow) {
    await this.transaction(async (tx) => {
      const store = tx as KyselyStore;
      // Two replacements at once would each delete nothing and both insert: one at a time per email.
      await store.lockEmail(row.email);
      const db = store.db;
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

  countCodeAttempt(email: string, purpose: CodeRow['purpose'], now: number, maxAttempts: number) {
    // One statement: the row lock PostgreSQL takes for the update makes concurrent counts queue and each
    // re-check `attempts` against the committed value, so the limit holds however many arrive at once.
    return this.db
      .updateTable('codes')
      .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
      .where('email', '=', email)
      .where('purpose', '=', purpose)
      .where('expires_at', '>', now)
      .where('attempts', '<', maxAttempts)
      .returningAll()
      .executeTakeFirst();
  }

  async deleteCode(id: string) {
    const result = await this.db.deleteFrom('codes').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async insertResetToken(row: ResetTokenRow) {
    await this.write(row.account_id, (db) => db.insertInto('reset_tokens').values(row).execute());
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

  async unhitRateLimit(bucket: string, windowStart: number) {
    await this.db
      .updateTable('rate_limits')
      .set((eb) => ({ hits: eb('hits', '-', 1) }))
      .where('bucket', '=', bucket)
      .where('window_start', '=', windowStart)
      .where('hits', '>', 0)
      .execute();
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
    return this.write(row.account_id, async (db) => {
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

  async findBackupVersion(accountId: string, version?: number) {
    await this.lockAccount(accountId);
    let query = this.db
      .selectFrom('backup_versions')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('deleted', '=', 0);
    query = version === undefined ? query.orderBy('version', 'desc').limit(1) : query.where('version', '=', version);
    return query.executeTakeFirst();
  }

  async updateBackupAuthData(accountId: string, version: number, authData: string) {
    await this.write(accountId, (db) =>
      db
        .updateTable('backup_versions')
        .set({ auth_data: authData })
        .where('account_id', '=', accountId)
        .where('version', '=', version)
        .execute(),
    );
  }

  async deleteBackupVersion(accountId: string, version: number) {
    return this.write(accountId, async (db) => {
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
    await this.write(accountId, (db) =>
      db
        .updateTable('backup_versions')
        .set((eb) => ({ etag: eb('etag', '+', etagDelta), key_count: eb('key_count', '+', countDelta) }))
        .where('account_id', '=', accountId)
        .where('version', '=', version)
        .execute(),
    );
  }

  async findBackupKeys(accountId: string, version: number, pairs: Array<[string, string]>) {
    if (pairs.length === 0) return [];
    await this.lockAccount(accountId);
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
    if (rows.length === 0) return;
    await this.write(
      rows.map((row) => row.account_id),
      async (db) => {
        for (let i = 0; i < rows.length; i += 100) {
          await db
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
      },
    );
  }

  async pageBackupKeys(accountId: string, version: number, after: [string, string] | undefined, limit: number) {
    await this.lockAccount(accountId);
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
    return this.write(accountId, async (db) => {
      let query = db.deleteFrom('backup_keys').where('account_id', '=', accountId).where('version', '=', version);
      if (roomId !== undefined) query = query.where('room_id', '=', roomId);
      if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
      const result = await query.executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }

  async getAccountData(accountId: string, type: string) {
    await this.lockAccount(accountId);
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
    await this.lockAccount(accountId);
    const rows = await this.db
      .selectFrom('account_data')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('type')
      .execute();
    return rows.filter((row) => row.type.startsWith(typePrefix));
  }

  async putAccountData(row: AccountDataRow) {
    await this.write(row.account_id, (db) =>
      db
        .insertInto('account_data')
        .values(row)
        .onConflict((oc) => oc.columns(['account_id', 'type']).doUpdateSet({ content: row.content }))
        .execute(),
    );
  }

  async deleteAccountData(accountId: string, type: string) {
    return this.write(accountId, async (db) => {
      const result = await db
        .deleteFrom('account_data')
        .where('account_id', '=', accountId)
        .where('type', '=', type)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
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
    await this.db.deleteFrom('device_tokens').where('expires_at', '<=', now).execute();
    await this.db.deleteFrom('sessions').where('expires_at', '<=', now).execute();
    await this.oauth.purgeExpired(now);
  }

  async close() {
    await this.root.destroy();
  }
}
