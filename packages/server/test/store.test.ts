import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackupUploadBody, isBetterBackupKey } from '@latchkey/core';
import { type Kysely, type MigrationProvider, Migrator, sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../../../test/support/postgres.js';
import type { ServerContext } from '../src/context.js';
import type { AuthenticatedSession } from '../src/modules/accounts/service.js';
import { deleteKeys, uploadKeys } from '../src/modules/backup/service.js';
import { type Connection, connect } from '../src/store/database.js';
import { openStore } from '../src/store/kysely-store.js';
import type { ColumnTypes } from '../src/store/migrate.js';
import * as m001 from '../src/store/migrations/001_accounts.js';
import * as m002 from '../src/store/migrations/002_backup.js';
import * as m003 from '../src/store/migrations/003_login_credentials_and_indexes.js';
import * as m004 from '../src/store/migrations/004_device_tokens.js';
import type {
  AccountRow,
  BackupKeyRow,
  BackupVersionRow,
  CodeRow,
  Database,
  DeviceTokenRow,
  LoginAttemptRow,
  ResetTokenRow,
  SessionRow,
} from '../src/store/schema.js';
import type { Store } from '../src/store/store.js';

/**
 * One suite for every backend (conventions §3): each test gets a fresh, migrated database through
 * `openStore(connect(url))`, the same path the server takes, and checks the Store contract from the
 * outside, reading tables directly only to prove what is (and is not) left behind.
 */

const NOW = 1_750_000_000_000;
const HOUR = 3_600_000;

/** Every byte value once, with extra zeros and 0xff at both ends (where a C-string or trim bug would bite). */
const ALL_BYTES = Uint8Array.from([0, 0xff, ...Array.from({ length: 256 }, (_, i) => i), 0xff, 0, 0]);

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const bytes = (...values: number[]) => Uint8Array.from(values);
/** A distinct 32-byte value per label, starting with a zero byte so no driver can treat it as text. */
const bytesFor = (label: string, fill = 0xab) => {
  const out = new Uint8Array(32).fill(fill);
  out[0] = 0;
  out.set(Buffer.from(label, 'utf8').subarray(0, 31), 1);
  return out;
};

/** Asserts a column came back as a Uint8Array holding exactly these bytes. */
function expectBytes(actual: Uint8Array | undefined, expected: Uint8Array) {
  expect(actual).toBeInstanceOf(Uint8Array);
  expect(hex(actual as Uint8Array)).toBe(hex(expected));
}

/** Rows with every byte column turned to hex, so two snapshots compare by value, not by buffer class. */
function plain(row: object): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(row).map(([key, value]) => [key, value instanceof Uint8Array ? `hex:${hex(value)}` : value]),
  );
}

function account(id: string, email: string, overrides: Partial<AccountRow> = {}): AccountRow {
  return {
    id,
    email,
    verified_at: null,
    created_at: NOW,
    credential_id: `cid:${id}`,
    opaque_record: bytesFor(`record ${id}`),
    wrap_kb: bytesFor(`wrapKB ${id}`),
    ka_sealed: bytesFor(`kA ${id}`),
    keys_changed_at: NOW,
    password_changed_at: NOW,
    ...overrides,
  };
}

function session(id: string, accountId: string, overrides: Partial<SessionRow> = {}): SessionRow {
  return {
    id,
    account_id: accountId,
    token_hash: bytesFor(`token ${id}`),
    device_name: `device ${id}`,
    user_agent: null,
    created_at: NOW,
    last_used_at: NOW,
    authenticated_at: NOW,
    expires_at: NOW + HOUR,
    ...overrides,
  };
}

function loginAttempt(id: string, email: string, accountId: string | null, expiresAt = NOW + 60_000): LoginAttemptRow {
  return {
    id,
    purpose: 'login',
    email,
    account_id: accountId,
    session_id: null,
    state_sealed: bytesFor(`state ${id}`),
    expires_at: expiresAt,
    password_changed_at: accountId === null ? null : NOW,
    device_token_id: null,
    rate_limit_hits: null,
  };
}

function code(id: string, email: string, purpose: CodeRow['purpose'], expiresAt = NOW + 600_000): CodeRow {
  return { id, email, purpose, code_mac: bytesFor(`mac ${id}`), attempts: 0, expires_at: expiresAt };
}

function deviceToken(id: string, accountId: string, overrides: Partial<DeviceTokenRow> = {}): DeviceTokenRow {
  return {
    id,
    account_id: accountId,
    token_hash: bytesFor(`device ${id}`),
    session_id: null,
    created_at: NOW,
    expires_at: NOW + HOUR,
    ...overrides,
  };
}

function resetToken(label: string, accountId: string, expiresAt = NOW + 600_000): ResetTokenRow {
  return { token_hash: bytesFor(`reset ${label}`), account_id: accountId, expires_at: expiresAt };
}

const BACKUP_ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';

/** A backup version as the service creates it; `auth_data` is JSON text with a label to tell rows apart. */
function backupVersion(
  accountId: string,
  label = accountId,
): Omit<BackupVersionRow, 'version' | 'etag' | 'key_count' | 'deleted'> {
  return {
    account_id: accountId,
    algorithm: BACKUP_ALGORITHM,
    auth_data: JSON.stringify({ public_key: `public key ${label}`, signatures: {} }),
    created_at: NOW,
  };
}

/** A backed-up key; `session_data` is JSON text naming the key, so a test can tell which row it reads. */
function backupKey(
  accountId: string,
  version: number,
  roomId: string,
  sessionId: string,
  overrides: Partial<BackupKeyRow> = {},
): BackupKeyRow {
  return {
    account_id: accountId,
    version,
    room_id: roomId,
    session_id: sessionId,
    first_message_index: 0,
    forwarded_count: 0,
    is_verified: 0,
    session_data: JSON.stringify({ ephemeral: accountId, ciphertext: `${roomId} ${sessionId}`, mac: 'mac' }),
    ...overrides,
  };
}

/** Keys as `room|session` strings, for comparing orders (a set of them needs an unambiguous form). */
const keyIds = (rows: Pick<BackupKeyRow, 'room_id' | 'session_id'>[]) =>
  rows.map((r) => `${r.room_id}|${r.session_id}`);

/** Byte order of (room_id, session_id): what SQLite's BINARY collation and the test cluster's C locale use. */
function byRoomThenSession(
  a: Pick<BackupKeyRow, 'room_id' | 'session_id'>,
  b: Pick<BackupKeyRow, 'room_id' | 'session_id'>,
) {
  const byBytes = (x: string, y: string) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8'));
  return byBytes(a.room_id, b.room_id) || byBytes(a.session_id, b.session_id);
}

/** A deterministic shuffle (a fixed LCG), so insertion order is scrambled the same way on every run. */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  let seed = 0x2545f491;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const rankOf = (row: BackupKeyRow) => ({
  is_verified: row.is_verified === 1,
  first_message_index: row.first_message_index,
  forwarded_count: row.forwarded_count,
});

type Snapshot = Record<string, Record<string, unknown>[]>;

/**
 * Every row of every table, in a stable order. The tables are read from the database's catalog, so a
 * table added by a later migration is covered without editing this suite.
 */
async function snapshot(connection: Connection): Promise<Snapshot> {
  const out: Snapshot = {};
  for (const { name } of await connection.db.introspection.getTables()) {
    const rows = await connection.db
      .selectFrom(name as keyof Database)
      .selectAll()
      .execute();
    out[name] = rows.map(plain).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }
  return out;
}

/** The names of the migrations recorded as applied. */
async function appliedMigrations(connection: Connection): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(connection.db);
  return rows.map((row) => row.name);
}

/** A database as a server before migration 005 left it: migrations 001 to 004 only. */
async function migrateBefore005(connection: Connection): Promise<void> {
  const types: ColumnTypes =
    connection.dialect === 'postgres' ? { bytes: 'bytea', time: 'bigint' } : { bytes: 'blob', time: 'integer' };
  const before = {
    '001_accounts': m001,
    '002_backup': m002,
    '003_login_credentials_and_indexes': m003,
    '004_device_tokens': m004,
  };
  const provider: MigrationProvider = {
    getMigrations: async () =>
      Object.fromEntries(
        Object.entries(before).map(([name, m]) => [name, { up: (db: Kysely<unknown>) => m.up(db, types) }]),
      ),
  };
  const { error } = await new Migrator({ db: connection.db as Kysely<unknown>, provider }).migrateToLatest();
  if (error !== undefined) throw error;
}

const databaseUrlFor = {
  sqlite: (dir: string, name: string) => Promise.resolve(`sqlite:${join(dir, `${name}.db`)}`),
  postgres: (_dir: string, name: string) => createTestDatabase(inject('postgresUrl'), `store_${name}`),
} as const;

describe.each(['sqlite', 'postgres'] as const)('Store on %s', (backend) => {
  let dir: string;
  let url: string;
  let connection: Connection;
  let store: Store;
  let counter = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `latchkey-store-${backend}-`));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    counter += 1;
    url = await databaseUrlFor[backend](dir, `t${counter}`);
    connection = connect(url);
    store = await openStore(connection);
  });
  afterEach(async () => {
    await store.close();
  });

  describe('migrations', () => {
    it('are idempotent: opening the store again migrates nothing and keeps every row', async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      const firstRun = await appliedMigrations(connection);
      const firstSnapshot = await snapshot(connection);
      await store.close();
      await (await openStore(connect(url))).close(); // second run of the migrations
      connection = connect(url);
      store = await openStore(connection); // third

      expect(firstRun).toContain('001_accounts');
      expect(await appliedMigrations(connection)).toEqual(firstRun);
      expect(await snapshot(connection)).toEqual(firstSnapshot);
    });
  });

  describe('migration 005', () => {
    it('gives each account made before it its email as credential identifier, the one its record was made under', async () => {
      const legacyUrl = await databaseUrlFor[backend](dir, `legacy${counter}`);
      const before = connect(legacyUrl);
      await migrateBefore005(before);
      const { credential_id: _none, ...legacyRow } = account('acc-old', 'old@example.com');
      // The accounts table as it was before 005: no credential_id column.
      const legacyDb = before.db as unknown as Kysely<{ accounts: Omit<AccountRow, 'credential_id'> }>;
      await legacyDb.insertInto('accounts').values(legacyRow).execute();
      await before.db.destroy();

      const after = await openStore(connect(legacyUrl));
      try {
        expect((await after.findAccountById('acc-old'))?.credential_id).toBe('old@example.com');
        // Accounts made after it keep the identifier they were given; two accounts can never share one.
        await after.insertAccount(account('acc-new', 'new@example.com'));
        expect((await after.findAccountById('acc-new'))?.credential_id).toBe('cid:acc-new');
        await expect(
          after.insertAccount({ ...account('acc-twin', 'twin@example.com'), credential_id: 'cid:acc-new' }),
        ).rejects.toThrow();
      } finally {
        await after.close();
      }
    });
  });

  describe('accounts', () => {
    it('inserts and finds an account by email and by id, with every column intact', async () => {
      const row = account('acc-1', 'one@example.com');
      await store.insertAccount(row);

      for (const found of [await store.findAccountByEmail('one@example.com'), await store.findAccountById('acc-1')]) {
        expect(found).toBeDefined();
        expect(plain(found as AccountRow)).toEqual(plain(row));
      }
      expect(await store.findAccountByEmail('two@example.com')).toBeUndefined();
      expect(await store.findAccountById('acc-2')).toBeUndefined();
    });

    it('refuses a second account with the same email or the same id', async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await expect(store.insertAccount(account('acc-2', 'one@example.com'))).rejects.toThrow();
      await expect(store.insertAccount(account('acc-1', 'two@example.com'))).rejects.toThrow();
      expect(await store.findAccountById('acc-2')).toBeUndefined();
      expect(await store.findAccountByEmail('two@example.com')).toBeUndefined();
    });

    it('marks an account verified without touching another', async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertAccount(account('acc-2', 'two@example.com'));
      await store.markAccountVerified('acc-1', NOW + 5);
      expect((await store.findAccountById('acc-1'))?.verified_at).toBe(NOW + 5);
      expect((await store.findAccountById('acc-2'))?.verified_at).toBeNull();
    });

    it('updates credentials, keeping keys_changed_at unless a new one is given', async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertAccount(account('acc-2', 'two@example.com'));
      const before2 = plain((await store.findAccountById('acc-2')) as AccountRow);

      await store.updateCredentials('acc-1', {
        credentialId: 'cid:acc-1-new',
        opaqueRecord: bytes(1, 0, 2),
        wrapKB: bytes(0xff, 0, 0xff),
        passwordChangedAt: NOW + 10,
      });
      let changed = (await store.findAccountById('acc-1')) as AccountRow;
      expectBytes(changed.opaque_record, bytes(1, 0, 2));
      expectBytes(changed.wrap_kb, bytes(0xff, 0, 0xff));
      expect(changed.password_changed_at).toBe(NOW + 10);
      expect(changed.keys_changed_at).toBe(NOW);
      expectBytes(changed.ka_sealed, bytesFor('kA acc-1'));

      await store.updateCredentials('acc-1', {
        credentialId: 'cid:acc-1-new',
        opaqueRecord: bytes(3),
        wrapKB: bytes(4),
        passwordChangedAt: NOW + 20,
        keysChangedAt: NOW + 20,
      });
      changed = (await store.findAccountById('acc-1')) as AccountRow;
      expect(changed.keys_changed_at).toBe(NOW + 20);
      expect(changed.password_changed_at).toBe(NOW + 20);
      expect(plain((await store.findAccountById('acc-2')) as AccountRow)).toEqual(before2);
    });

    it("ends the account's login attempts, reset tokens and reset code with its credentials, nothing else", async () => {
      // `_` is a LIKE wildcard: a pattern match on the first email would catch the second's rows.
      const accounts = [
        { id: 'acc-1', email: 'a_b@example.com' },
        { id: 'acc-2', email: 'axb@example.com' },
      ];
      for (const { id, email } of accounts) {
        await store.insertAccount(account(id, email));
        await store.insertSession(session(`${id}-s`, id));
        await store.insertLoginAttempt(loginAttempt(`${id}-la`, email, id));
        await store.insertLoginAttempt(loginAttempt(`${id}-la-unknown`, email, null)); // before the account was known
        await store.replaceCode(code(`${id}-cv`, email, 'verify'));
        await store.replaceCode(code(`${id}-cr`, email, 'reset'));
        await store.insertResetToken(resetToken(id, id));
        await store.hitRateLimit(`code:reset:${email}`, NOW, 60_000);
      }
      await store.replaceCode(code('c-nobody', 'nobody@example.com', 'reset'));
      const before = await snapshot(connection);

      await store.updateCredentials('acc-1', {
        credentialId: 'cid:acc-1-new',
        opaqueRecord: bytes(1),
        wrapKB: bytes(2),
        passwordChangedAt: NOW + 1,
      });

      const after = await snapshot(connection);
      const ended = (table: string, row: Record<string, unknown>) =>
        (table === 'login_attempts' && row['id'] === 'acc-1-la') ||
        (table === 'reset_tokens' && row['account_id'] === 'acc-1') ||
        (table === 'codes' && row['id'] === 'acc-1-cr');
      for (const [table, rows] of Object.entries(before)) {
        const kept = rows.filter((row) => !ended(table, row));
        if (table !== 'accounts') expect(after[table], table).toEqual(kept);
        // The filter must have had exactly one row to remove in each table it names.
        if (['login_attempts', 'reset_tokens', 'codes'].includes(table))
          expect(kept, table).toHaveLength(rows.length - 1);
      }
      const otherAccounts = (snap: Snapshot) => snap['accounts']?.filter((row) => row['id'] !== 'acc-1');
      expect(otherAccounts(after)).toEqual(otherAccounts(before));
      expect((await store.findAccountById('acc-1'))?.password_changed_at).toBe(NOW + 1);
    });

    it('changes nothing for an account that does not exist, and says it is gone (LK_UNAUTHORIZED)', async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertLoginAttempt(loginAttempt('la-1', 'one@example.com', 'acc-1'));
      await store.replaceCode(code('c-1', 'one@example.com', 'reset'));
      await store.insertResetToken(resetToken('t-1', 'acc-1'));
      const before = await snapshot(connection);
      // A password change racing the account's deletion: the client of a deleted account hears so.
      await expect(
        store.updateCredentials('acc-missing', {
          credentialId: 'cid:acc-missing-new',
          opaqueRecord: bytes(1),
          wrapKB: bytes(2),
          passwordChangedAt: NOW,
        }),
      ).rejects.toMatchObject({ code: 'LK_UNAUTHORIZED' });
      expect(await snapshot(connection)).toEqual(before);
    });
  });

  describe('deleteAccount', () => {
    /**
     * Gives an account a row in every table that can hold one. The emails below are chosen so that a
     * pattern match (`_` is a LIKE wildcard; `:` may appear in a local part) would catch the others.
     */
    async function populate(id: string, email: string) {
      await store.insertAccount(account(id, email));
      await store.insertSession(session(`${id}-s1`, id));
      await store.insertSession(session(`${id}-s2`, id));
      await store.insertLoginAttempt(loginAttempt(`${id}-la1`, email, id));
      await store.insertLoginAttempt(loginAttempt(`${id}-la2`, email, null)); // before the account was known
      await store.replaceCode(code(`${id}-cv`, email, 'verify'));
      await store.replaceCode(code(`${id}-cr`, email, 'reset'));
      await store.insertResetToken(resetToken(id, id));
      await store.insertDeviceToken(deviceToken(`${id}-d`, id, { session_id: `${id}-s1` }), 10);
      for (const bucket of [`login:acct:${email}`, `code:verify:${email}`, `code:reset:${email}`]) {
        await store.hitRateLimit(bucket, NOW, 60_000);
      }
      const version = await store.createBackupVersion({
        account_id: id,
        algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
        auth_data: '{}',
        created_at: NOW,
      });
      await store.putBackupKeys([
        {
          account_id: id,
          version,
          room_id: '!room:example.com',
          session_id: `session-${id}`,
          first_message_index: 0,
          forwarded_count: 0,
          is_verified: 1,
          session_data: '{}',
        },
      ]);
      await store.putAccountData({ account_id: id, type: 'm.secret_storage.default_key', content: '{}' });
    }

    /** Tables where `populate` leaves rows, so the filter below is shown to remove something from each. */
    const PER_ACCOUNT_TABLES = [
      'accounts',
      'sessions',
      'login_attempts',
      'codes',
      'reset_tokens',
      'device_tokens',
      'rate_limits',
      'backup_versions',
      'backup_keys',
      'account_data',
    ];

    const victim = { id: 'acc-victim', email: 'a_b@example.com' };
    const others = [
      { id: 'acc-lookalike', email: 'axb@example.com' },
      { id: 'acc-suffix', email: 'x:a_b@example.com' },
      { id: 'acc-plain', email: 'c@example.com' },
    ];
    const belongsToVictim = (row: Record<string, unknown>) =>
      row['id'] === victim.id ||
      row['account_id'] === victim.id ||
      row['email'] === victim.email ||
      (typeof row['bucket'] === 'string' &&
        [`login:acct:`, `code:verify:`, `code:reset:`].some((prefix) => row['bucket'] === `${prefix}${victim.email}`));

    it('removes every row of the account and nothing of any other', async () => {
      for (const a of [victim, ...others]) await populate(a.id, a.email);
      await store.hitRateLimit('login:addr:127.0.0.1', NOW, 60_000);
      await store.putServerSecretOnce('ka-master-check', bytes(9, 9));
      const before = await snapshot(connection);

      await store.deleteAccount(victim.id, victim.email);

      const after = await snapshot(connection);
      expect(Object.keys(after)).toEqual(Object.keys(before));
      for (const [table, rows] of Object.entries(before)) {
        expect(after[table], table).toEqual(rows.filter((row) => !belongsToVictim(row)));
      }
      // The filter above must have had something to remove in every per-account table.
      for (const table of PER_ACCOUNT_TABLES) {
        expect(after[table]?.length, table).toBeLessThan(before[table]?.length ?? 0);
      }
      expect(await store.findAccountById(victim.id)).toBeUndefined();
      expect(await store.listSessions(victim.id)).toEqual([]);
    });

    it('keeps the rate-limit buckets named by its email when asked to, and removes the rest alike', async () => {
      for (const a of [victim, ...others]) await populate(a.id, a.email);
      await store.hitRateLimit('login:addr:127.0.0.1', NOW, 60_000);
      const before = await snapshot(connection);

      await store.deleteAccount(victim.id, victim.email, { keepRateLimits: true });

      const after = await snapshot(connection);
      const victimBuckets = (snap: Snapshot) =>
        snap['rate_limits']?.filter(belongsToVictim).map((row) => row['bucket']);
      expect(victimBuckets(before)).toHaveLength(3);
      expect(after['rate_limits']).toEqual(before['rate_limits']);
      for (const [table, rows] of Object.entries(before)) {
        if (table === 'rate_limits') continue;
        expect(after[table], table).toEqual(rows.filter((row) => !belongsToVictim(row)));
        if (PER_ACCOUNT_TABLES.includes(table)) expect(after[table]?.length, table).toBeLessThan(rows.length);
      }
      // The kept buckets go on counting where they were: 1 hit before, this is the second.
      expect(await store.hitRateLimit(`code:verify:${victim.email}`, NOW, 60_000)).toBe(2);
    });

    it('is harmless for an account that does not exist', async () => {
      await populate('acc-1', 'one@example.com');
      const before = await snapshot(connection);
      await store.deleteAccount('acc-missing', 'missing@example.com');
      expect(await snapshot(connection)).toEqual(before);
    });
  });

  describe('sessions', () => {
    beforeEach(async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertAccount(account('acc-2', 'two@example.com'));
    });

    it('finds a session by its token hash and refuses a duplicate hash', async () => {
      const row = session('s1', 'acc-1', { user_agent: 'test agent', device_name: null });
      await store.insertSession(row);
      const found = await store.findSessionByTokenHash(bytesFor('token s1'));
      expect(plain(found as SessionRow)).toEqual(plain(row));
      expect(await store.findSessionByTokenHash(bytesFor('token s1', 0xac))).toBeUndefined();
      await expect(store.insertSession(session('s2', 'acc-1', { token_hash: bytesFor('token s1') }))).rejects.toThrow();
    });

    it('refuses a session for an account that does not exist', async () => {
      await expect(store.insertSession(session('s1', 'acc-missing'))).rejects.toThrow();
    });

    it('touches last use, and re-authentication moves both times', async () => {
      await store.insertSession(session('s1', 'acc-1'));
      await store.touchSession('s1', NOW + 100);
      let row = (await store.findSessionByTokenHash(bytesFor('token s1'))) as SessionRow;
      expect([row.last_used_at, row.authenticated_at, row.created_at]).toEqual([NOW + 100, NOW, NOW]);

      await store.setSessionAuthenticatedAt('s1', NOW + 200);
      row = (await store.findSessionByTokenHash(bytesFor('token s1'))) as SessionRow;
      expect([row.last_used_at, row.authenticated_at, row.created_at]).toEqual([NOW + 200, NOW + 200, NOW]);
    });

    it("lists only the account's sessions, oldest first", async () => {
      await store.insertSession(session('s-b', 'acc-1', { created_at: NOW + 2 }));
      await store.insertSession(session('s-a', 'acc-1', { created_at: NOW + 1 }));
      await store.insertSession(session('s-c', 'acc-1', { created_at: NOW + 2 }));
      await store.insertSession(session('s-other', 'acc-2'));
      expect((await store.listSessions('acc-1')).map((s) => s.id)).toEqual(['s-a', 's-b', 's-c']);
      expect((await store.listSessions('acc-2')).map((s) => s.id)).toEqual(['s-other']);
      expect(await store.listSessions('acc-missing')).toEqual([]);
    });

    it("deletes one session only through its own account's id", async () => {
      await store.insertSession(session('s1', 'acc-1'));
      expect(await store.deleteSession('acc-2', 's1')).toBe(false);
      expect(await store.listSessions('acc-1')).toHaveLength(1);
      expect(await store.deleteSession('acc-1', 's1')).toBe(true);
      expect(await store.deleteSession('acc-1', 's1')).toBe(false);
      expect(await store.findSessionByTokenHash(bytesFor('token s1'))).toBeUndefined();
    });

    it('deletes all sessions but the kept one, then all, and never another account’s', async () => {
      for (const id of ['s1', 's2', 's3']) await store.insertSession(session(id, 'acc-1'));
      await store.insertSession(session('s-other', 'acc-2'));

      expect(await store.deleteSessions('acc-1', 's2')).toBe(2);
      expect((await store.listSessions('acc-1')).map((s) => s.id)).toEqual(['s2']);
      expect(await store.deleteSessions('acc-1')).toBe(1);
      expect(await store.listSessions('acc-1')).toEqual([]);
      expect(await store.deleteSessions('acc-1')).toBe(0);
      expect((await store.listSessions('acc-2')).map((s) => s.id)).toEqual(['s-other']);
    });
  });

  describe('login attempts', () => {
    it('are taken once: the second take finds nothing', async () => {
      const row: LoginAttemptRow = {
        ...loginAttempt('la1', 'one@example.com', 'acc-9'),
        purpose: 'reauth',
        session_id: 's9',
        password_changed_at: NOW - 5,
      };
      await store.insertLoginAttempt(row);
      const taken = await store.takeLoginAttempt('la1', NOW);
      expect(plain(taken as LoginAttemptRow)).toEqual(plain(row));
      expect(await store.takeLoginAttempt('la1', NOW)).toBeUndefined();
      expect(await store.takeLoginAttempt('la-missing', NOW)).toBeUndefined();
    });

    it('cannot be taken at or after expiry, and an expired take still removes the attempt', async () => {
      await store.insertLoginAttempt(loginAttempt('la1', 'one@example.com', null, NOW + 1000));
      await store.insertLoginAttempt(loginAttempt('la2', 'one@example.com', null, NOW + 1000));
      expect(await store.takeLoginAttempt('la1', NOW + 1000)).toBeUndefined();
      expect(await store.takeLoginAttempt('la1', NOW)).toBeUndefined(); // gone, not merely refused
      expect((await store.takeLoginAttempt('la2', NOW + 999))?.id).toBe('la2');
    });
  });

  describe('codes', () => {
    it('keep one code per (email, purpose): a new one replaces the old', async () => {
      await store.replaceCode(code('c1', 'one@example.com', 'verify'));
      await store.replaceCode(code('c-reset', 'one@example.com', 'reset'));
      await store.replaceCode(code('c-other', 'two@example.com', 'verify'));
      const second = { ...code('c2', 'one@example.com', 'verify'), code_mac: ALL_BYTES };
      await store.replaceCode(second);

      expect(plain((await store.findCode('one@example.com', 'verify')) as CodeRow)).toEqual(plain(second));
      expect((await store.findCode('one@example.com', 'reset'))?.id).toBe('c-reset');
      expect((await store.findCode('two@example.com', 'verify'))?.id).toBe('c-other');
      expect(await store.findCode('three@example.com', 'verify')).toBeUndefined();
      expect(await store.deleteCode('c1')).toBe(false);
    });

    it('count attempts and are deleted once', async () => {
      await store.replaceCode(code('c1', 'one@example.com', 'verify'));
      await store.replaceCode(code('c2', 'two@example.com', 'verify'));
      expect((await store.countCodeAttempt('one@example.com', 'verify', NOW, 5))?.attempts).toBe(1);
      expect((await store.countCodeAttempt('one@example.com', 'verify', NOW, 5))?.attempts).toBe(2);
      expect((await store.findCode('one@example.com', 'verify'))?.attempts).toBe(2);
      expect((await store.findCode('two@example.com', 'verify'))?.attempts).toBe(0);

      expect(await store.deleteCode('c1')).toBe(true);
      expect(await store.deleteCode('c1')).toBe(false);
      expect(await store.findCode('one@example.com', 'verify')).toBeUndefined();
      expect((await store.findCode('two@example.com', 'verify'))?.id).toBe('c2');
    });

    it('count an attempt only at a live code with attempts left (issue 8), however many come at once', async () => {
      await store.replaceCode(code('c1', 'one@example.com', 'verify'));
      await store.replaceCode(code('c-expired', 'two@example.com', 'verify', NOW));
      const counted = await Promise.all(
        Array.from({ length: 20 }, () => store.countCodeAttempt('one@example.com', 'verify', NOW, 5)),
      );
      expect(counted.map((row) => row?.attempts ?? 'refused').sort()).toEqual([
        1,
        2,
        3,
        4,
        5,
        ...Array.from({ length: 15 }, () => 'refused'),
      ]);
      expect((await store.findCode('one@example.com', 'verify'))?.attempts).toBe(5);
      expect(await store.countCodeAttempt('two@example.com', 'verify', NOW, 5)).toBeUndefined();
      expect((await store.findCode('two@example.com', 'verify'))?.attempts).toBe(0);
      expect(await store.countCodeAttempt('one@example.com', 'reset', NOW, 5)).toBeUndefined();
    });
  });

  describe('reset tokens', () => {
    beforeEach(async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
    });

    it('are found while unexpired and taken once', async () => {
      const row = resetToken('t1', 'acc-1', NOW + 1000);
      await store.insertResetToken(row);
      expect(plain((await store.findResetToken(row.token_hash, NOW + 999)) as ResetTokenRow)).toEqual(plain(row));
      expect(await store.findResetToken(row.token_hash, NOW + 1000)).toBeUndefined();
      expect(await store.findResetToken(bytesFor('reset t2'), NOW)).toBeUndefined();

      expect(plain((await store.takeResetToken(row.token_hash, NOW)) as ResetTokenRow)).toEqual(plain(row));
      expect(await store.takeResetToken(row.token_hash, NOW)).toBeUndefined();
      expect(await store.findResetToken(row.token_hash, NOW)).toBeUndefined();
    });

    it('cannot be taken once expired, and the expired take removes the token', async () => {
      const row = resetToken('t1', 'acc-1', NOW + 1000);
      await store.insertResetToken(row);
      expect(await store.takeResetToken(row.token_hash, NOW + 1000)).toBeUndefined();
      expect(await store.takeResetToken(row.token_hash, NOW)).toBeUndefined();
    });
  });

  describe('device tokens', () => {
    beforeEach(async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertAccount(account('acc-2', 'two@example.com'));
    });

    it('are found by hash while unexpired, every column intact, and refuse a duplicate hash', async () => {
      const row = deviceToken('d1', 'acc-1', { session_id: 's1', token_hash: ALL_BYTES });
      await store.insertDeviceToken(row, 10);
      expect(plain((await store.findDeviceToken(ALL_BYTES, NOW)) as DeviceTokenRow)).toEqual(plain(row));
      expect(await store.findDeviceToken(ALL_BYTES, NOW + HOUR)).toBeUndefined();
      expect(await store.findDeviceToken(bytesFor('device other'), NOW)).toBeUndefined();
      await expect(
        store.insertDeviceToken(deviceToken('d2', 'acc-2', { token_hash: ALL_BYTES }), 10),
      ).rejects.toThrow();
      await expect(store.insertDeviceToken(deviceToken('d3', 'acc-none'), 10)).rejects.toThrow();
    });

    it("keep only an account's newest, never touching another account's", async () => {
      for (let i = 0; i < 5; i++)
        await store.insertDeviceToken(deviceToken(`old-${i}`, 'acc-2', { created_at: NOW }), 3);
      for (let i = 0; i < 5; i++) {
        await store.insertDeviceToken(deviceToken(`d${i}`, 'acc-1', { created_at: NOW + i }), 3);
      }
      const held = async (id: string) =>
        (
          await sql<{ id: string }>`SELECT id FROM device_tokens WHERE account_id = ${id} ORDER BY id`.execute(
            connection.db,
          )
        ).rows.map((row) => row.id);
      expect(await held('acc-1')).toEqual(['d2', 'd3', 'd4']);
      expect(await held('acc-2')).toHaveLength(3);
    });

    it('are revoked one by one or by session, only within the account', async () => {
      await store.insertDeviceToken(deviceToken('d1', 'acc-1', { session_id: 's1' }), 10);
      await store.insertDeviceToken(deviceToken('d2', 'acc-1', { session_id: 's2' }), 10);
      await store.insertDeviceToken(deviceToken('d3', 'acc-2', { session_id: 's1' }), 10);
      await store.deleteSessionDeviceTokens('acc-1', 's1');
      expect(await store.findDeviceToken(bytesFor('device d1'), NOW)).toBeUndefined();
      expect((await store.findDeviceToken(bytesFor('device d3'), NOW))?.id).toBe('d3');
      await store.deleteDeviceToken('d2');
      expect(await store.findDeviceToken(bytesFor('device d2'), NOW)).toBeUndefined();
      expect((await store.findDeviceToken(bytesFor('device d3'), NOW))?.id).toBe('d3');
    });

    it("end with a credentials change but the changing session's, and only the account's", async () => {
      await store.insertDeviceToken(deviceToken('kept', 'acc-1', { session_id: 'changer' }), 10);
      await store.insertDeviceToken(deviceToken('other', 'acc-1', { session_id: 'other' }), 10);
      await store.insertDeviceToken(deviceToken('orphan', 'acc-1', { session_id: null }), 10);
      await store.insertDeviceToken(deviceToken('elsewhere', 'acc-2', { session_id: 'changer' }), 10);
      const change = {
        credentialId: 'cid:acc-1-new',
        opaqueRecord: bytes(1),
        wrapKB: bytes(2),
        passwordChangedAt: NOW + 1,
      };
      await store.updateCredentials('acc-1', { ...change, keepDeviceTokensOf: 'changer' });
      const live = async () =>
        (await sql<{ id: string }>`SELECT id FROM device_tokens ORDER BY id`.execute(connection.db)).rows.map(
          (row) => row.id,
        );
      expect(await live()).toEqual(['elsewhere', 'kept']);
      await store.updateCredentials('acc-1', change); // a reset: none kept
      expect(await live()).toEqual(['elsewhere']);
    });
  });

  describe('rate limits', () => {
    it('take back a hit only in the window it was counted in, and never below zero', async () => {
      const window = 60_000;
      const start = 1_000 * window;
      for (let i = 0; i < 3; i++) await store.hitRateLimit('g', start, window);
      await store.hitRateLimit('other', start, window);
      await store.unhitRateLimit('g', start);
      expect(await store.hitRateLimit('g', start + 1, window)).toBe(3);
      // A window that has ended is not the one holding the bucket's count now.
      await store.hitRateLimit('g', start + window, window);
      await store.unhitRateLimit('g', start);
      expect(await store.hitRateLimit('g', start + window, window)).toBe(2);
      for (let i = 0; i < 5; i++) await store.unhitRateLimit('g', start + window);
      expect(await store.hitRateLimit('g', start + window, window)).toBe(1);
      expect(await store.hitRateLimit('other', start, window)).toBe(2);
    });

    it('count hits within a fixed window and start again in the next', async () => {
      const window = 60_000;
      const start = 1_000 * window; // a window boundary
      expect(await store.hitRateLimit('login:acct:one@example.com', start, window)).toBe(1);
      expect(await store.hitRateLimit('login:acct:one@example.com', start + 1, window)).toBe(2);
      expect(await store.hitRateLimit('login:acct:one@example.com', start + window - 1, window)).toBe(3);
      expect(await store.hitRateLimit('login:acct:two@example.com', start + 5, window)).toBe(1);
      expect(await store.hitRateLimit('login:acct:one@example.com', start + window, window)).toBe(1);
      expect(await store.hitRateLimit('login:acct:one@example.com', start + window + 7, window)).toBe(2);
      expect(await store.hitRateLimit('login:acct:one@example.com', start + 5 * window + 1, window)).toBe(1);
    });
  });

  describe('server secrets', () => {
    it('keep the first value put: later puts return it and change nothing', async () => {
      expect(await store.getServerSecret('master-check')).toBeUndefined();
      expectBytes(await store.putServerSecretOnce('master-check', ALL_BYTES), ALL_BYTES);
      expectBytes(await store.putServerSecretOnce('master-check', bytes(1, 2, 3)), ALL_BYTES);
      expectBytes(await store.getServerSecret('master-check'), ALL_BYTES);
      expectBytes(await store.putServerSecretOnce('other', bytes(0)), bytes(0));
    });

    it('keep the first value when two puts race', async () => {
      const puts = await Promise.all([
        store.putServerSecretOnce('raced', bytes(1)),
        store.putServerSecretOnce('raced', bytes(2)),
        store.putServerSecretOnce('raced', bytes(3)),
      ]);
      const stored = (await store.getServerSecret('raced')) as Uint8Array;
      for (const value of puts) expectBytes(value, stored);
    });
  });

  describe('backup versions', () => {
    beforeEach(async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertAccount(account('acc-2', 'two@example.com'));
    });

    it('are numbered from 1 per account and never reuse a number, deleted ones included', async () => {
      expect(await store.createBackupVersion(backupVersion('acc-1', 'first'))).toBe(1);
      expect(await store.createBackupVersion(backupVersion('acc-1', 'second'))).toBe(2);
      expect(await store.createBackupVersion(backupVersion('acc-2'))).toBe(1);

      expect(await store.findBackupVersion('acc-1', 1)).toEqual({
        ...backupVersion('acc-1', 'first'),
        version: 1,
        etag: 0,
        key_count: 0,
        deleted: 0,
      });
      expect((await store.findBackupVersion('acc-1'))?.version).toBe(2); // the current one: newest live
      expect(JSON.parse((await store.findBackupVersion('acc-1'))?.auth_data ?? '')).toEqual(
        JSON.parse(backupVersion('acc-1', 'second').auth_data),
      );

      expect(await store.deleteBackupVersion('acc-1', 2)).toBe(true);
      expect(await store.deleteBackupVersion('acc-1', 2)).toBe(false);
      expect(await store.findBackupVersion('acc-1', 2)).toBeUndefined();
      expect((await store.findBackupVersion('acc-1'))?.version).toBe(1);
      expect(await store.createBackupVersion(backupVersion('acc-1', 'third'))).toBe(3);
      expect((await store.findBackupVersion('acc-1'))?.version).toBe(3);

      expect(await store.deleteBackupVersion('acc-1', 3)).toBe(true);
      expect(await store.deleteBackupVersion('acc-1', 1)).toBe(true);
      expect(await store.findBackupVersion('acc-1')).toBeUndefined();
      expect(await store.deleteBackupVersion('acc-1', 7)).toBe(false);
      expect(await store.createBackupVersion(backupVersion('acc-1'))).toBe(4);
      expect((await store.findBackupVersion('acc-2'))?.version).toBe(1);
    });

    it("update only one version's auth_data, keeping its etag and count", async () => {
      await store.createBackupVersion(backupVersion('acc-1', 'v1'));
      await store.createBackupVersion(backupVersion('acc-1', 'v2'));
      await store.createBackupVersion(backupVersion('acc-2', 'other'));
      await store.bumpBackupVersion('acc-1', 1, 3, 2);
      const authData = JSON.stringify({ public_key: 'new key', signatures: { 'acc-1': { 'ed25519:x': 'sig ✓' } } });

      await store.updateBackupAuthData('acc-1', 1, authData);

      expect(await store.findBackupVersion('acc-1', 1)).toMatchObject({ auth_data: authData, etag: 3, key_count: 2 });
      expect((await store.findBackupVersion('acc-1', 2))?.auth_data).toBe(backupVersion('acc-1', 'v2').auth_data);
      expect((await store.findBackupVersion('acc-2', 1))?.auth_data).toBe(backupVersion('acc-2', 'other').auth_data);
    });

    it('move etag and count by the deltas given, on that version only', async () => {
      await store.createBackupVersion(backupVersion('acc-1'));
      await store.createBackupVersion(backupVersion('acc-1'));
      await store.createBackupVersion(backupVersion('acc-2'));

      await store.bumpBackupVersion('acc-1', 1, 1, 5);
      await store.bumpBackupVersion('acc-1', 1, 0, 0); // the service's row lock: changes nothing
      await store.bumpBackupVersion('acc-1', 1, 1, -2);

      const numbers = async (accountId: string, version: number) => {
        const row = await store.findBackupVersion(accountId, version);
        return [row?.etag, row?.key_count];
      };
      expect(await numbers('acc-1', 1)).toEqual([2, 3]);
      expect(await numbers('acc-1', 2)).toEqual([0, 0]);
      expect(await numbers('acc-2', 1)).toEqual([0, 0]);
      expect(typeof (await store.findBackupVersion('acc-1', 1))?.etag).toBe('number');
    });

    it("delete removes that version's keys and zeroes its count, keeping its row (numbers stay used)", async () => {
      await store.createBackupVersion(backupVersion('acc-1'));
      await store.createBackupVersion(backupVersion('acc-1'));
      await store.putBackupKeys([backupKey('acc-1', 1, '!r', 'a'), backupKey('acc-1', 1, '!r', 'b')]);
      await store.putBackupKeys([backupKey('acc-1', 2, '!r', 'a')]);
      await store.bumpBackupVersion('acc-1', 1, 1, 2);

      expect(await store.deleteBackupVersion('acc-1', 1)).toBe(true);

      expect(await store.pageBackupKeys('acc-1', 1, undefined, 10)).toEqual([]);
      expect(keyIds(await store.pageBackupKeys('acc-1', 2, undefined, 10))).toEqual(['!r|a']);
      const rows = (await snapshot(connection)).backup_versions ?? [];
      expect(rows.map((r) => [r['version'], r['deleted'], r['key_count']])).toEqual([
        [1, 1, 0],
        [2, 0, 0],
      ]);
    });

    it('are refused for an account that does not exist', async () => {
      await expect(store.createBackupVersion(backupVersion('acc-missing'))).rejects.toThrow();
      expect(await store.findBackupVersion('acc-missing')).toBeUndefined();
    });
  });

  describe('backup keys', () => {
    beforeEach(async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertAccount(account('acc-2', 'two@example.com'));
      await store.createBackupVersion(backupVersion('acc-1'));
      await store.createBackupVersion(backupVersion('acc-1'));
      await store.createBackupVersion(backupVersion('acc-2'));
    });

    it('round-trip every column, and are found by (room, session) pairs of one version', async () => {
      const odd = backupKey('acc-1', 1, '!räum:example.org', 'sess/+=', {
        first_message_index: 4_294_967_295,
        forwarded_count: 1_000_000,
        is_verified: 1,
        session_data: JSON.stringify({ ephemeral: 'e', ciphertext: 'quote " backslash \\ nul-free ✓', mac: 'm' }),
      });
      const plainKey = backupKey('acc-1', 1, '!r', 'a');
      const otherVersion = backupKey('acc-1', 2, '!r', 'a', { is_verified: 1 });
      await store.putBackupKeys([odd, plainKey, otherVersion]);

      const found = await store.findBackupKeys('acc-1', 1, [
        [odd.room_id, odd.session_id],
        ['!r', 'a'],
        ['!r', 'missing'],
        ['!missing', 'a'],
      ]);
      expect(found.sort(byRoomThenSession)).toEqual([plainKey, odd].sort(byRoomThenSession));
      expect(await store.findBackupKeys('acc-1', 2, [['!r', 'a']])).toEqual([otherVersion]);
      expect(await store.findBackupKeys('acc-1', 1, [])).toEqual([]);
    });

    it('are found in one call for more pairs than one statement may bind (chunked)', async () => {
      const many = Array.from({ length: 1_000 }, (_, i) => backupKey('acc-1', 1, `!room${i % 7}`, `s${i}`));
      await store.putBackupKeys(many);
      const pairs = many.map((k): [string, string] => [k.room_id, k.session_id]);
      const found = await store.findBackupKeys('acc-1', 1, [...pairs, ['!room0', 'absent']]);
      expect(keyIds(found.sort(byRoomThenSession))).toEqual(keyIds([...many].sort(byRoomThenSession)));
    });

    it('are replaced as given: the store does not rank keys, the backup service does (core isBetterBackupKey)', async () => {
      const best = backupKey('acc-1', 1, '!r', 'a', { is_verified: 1, first_message_index: 0 });
      const worse = backupKey('acc-1', 1, '!r', 'a', {
        is_verified: 0,
        first_message_index: 99,
        forwarded_count: 3,
        session_data: JSON.stringify({ ephemeral: 'worse', ciphertext: 'worse', mac: 'worse' }),
      });
      expect(isBetterBackupKey(rankOf(worse), rankOf(best))).toBe(false);
      await store.putBackupKeys([best]);
      await store.putBackupKeys([worse]);
      expect(await store.findBackupKeys('acc-1', 1, [['!r', 'a']])).toEqual([worse]);
      expect(await store.pageBackupKeys('acc-1', 1, undefined, 10)).toHaveLength(1);
    });

    it('are refused for a version that does not exist', async () => {
      await expect(store.putBackupKeys([backupKey('acc-1', 99, '!r', 'a')])).rejects.toThrow();
      await expect(store.putBackupKeys([backupKey('acc-missing', 1, '!r', 'a')])).rejects.toThrow();
      expect(await store.pageBackupKeys('acc-1', 99, undefined, 10)).toEqual([]);
    });

    it('page in (room_id, session_id) order from a cursor: every key once, no gaps, other versions unseen', async () => {
      // Rooms that are prefixes of each other, differ only in case, and hold a '|' that would make a
      // naive "room|session" cursor ambiguous; room sizes put page boundaries inside rooms and between.
      const rooms: Array<[string, number]> = [
        ['!A:example.org', 1],
        ['!a:example.or', 3],
        ['!a:example.org', 250],
        ['!a:example.org2', 100],
        ['!b', 400],
        ['!b|c', 7],
        ['!z', 473],
      ];
      const all = rooms.flatMap(([room, size]) =>
        Array.from({ length: size }, (_, i) => backupKey('acc-1', 1, room, room === '!b' ? `c|${i}` : `${i}`)),
      );
      expect(all).toHaveLength(1_234);
      await store.putBackupKeys(shuffled(all));
      // Same ids in another version and another account: never part of this version's pages.
      await store.putBackupKeys(all.slice(0, 300).map((k) => ({ ...k, version: 2 })));
      await store.putBackupKeys(all.slice(0, 300).map((k) => ({ ...k, account_id: 'acc-2' })));

      const limit = 100;
      const pages: BackupKeyRow[][] = [];
      let after: [string, string] | undefined;
      for (let page = 0; page < 50; page++) {
        const rows = await store.pageBackupKeys('acc-1', 1, after, limit);
        pages.push(rows);
        const last = rows.at(-1);
        if (rows.length < limit || last === undefined) break;
        after = [last.room_id, last.session_id];
      }

      const expected = [...all].sort(byRoomThenSession);
      expect(pages.map((rows) => rows.length)).toEqual([...Array.from({ length: 12 }, () => limit), 34]);
      const paged = pages.flat();
      expect(keyIds(paged)).toEqual(keyIds(expected));
      expect(new Set(paged.map((row) => JSON.stringify([row.room_id, row.session_id]))).size).toBe(all.length);
      expect(paged.every((row) => row.account_id === 'acc-1' && row.version === 1)).toBe(true);
      expect(paged.map(plain)).toEqual(expected.map(plain)); // every column intact

      // A cursor past the last key ends the paging; one between stored keys starts at the next one.
      const last = expected.at(-1) as BackupKeyRow;
      expect(await store.pageBackupKeys('acc-1', 1, [last.room_id, last.session_id], limit)).toEqual([]);
      const between: [string, string] = ['!a:example.org', '15x'];
      const next = expected.filter((k) => byRoomThenSession(k, { room_id: between[0], session_id: between[1] }) > 0);
      expect(keyIds(await store.pageBackupKeys('acc-1', 1, between, 5))).toEqual(keyIds(next.slice(0, 5)));
    });

    it('are deleted by version, room or session, and the count of deleted rows is returned', async () => {
      const keys = [
        backupKey('acc-1', 1, '!r1', 'a'),
        backupKey('acc-1', 1, '!r1', 'b'),
        backupKey('acc-1', 1, '!r2', 'a'),
        backupKey('acc-1', 1, '!r3', 'a'),
        backupKey('acc-1', 2, '!r1', 'a'),
        backupKey('acc-2', 1, '!r1', 'a'),
      ];
      await store.putBackupKeys(keys);

      expect(await store.deleteBackupKeys('acc-1', 1, '!r1', 'a')).toBe(1);
      expect(await store.deleteBackupKeys('acc-1', 1, '!r1', 'a')).toBe(0);
      expect(keyIds(await store.pageBackupKeys('acc-1', 1, undefined, 10))).toEqual(['!r1|b', '!r2|a', '!r3|a']);
      expect(await store.deleteBackupKeys('acc-1', 1, '!r1')).toBe(1);
      expect(await store.deleteBackupKeys('acc-1', 1)).toBe(2);
      expect(await store.pageBackupKeys('acc-1', 1, undefined, 10)).toEqual([]);
      expect(keyIds(await store.pageBackupKeys('acc-1', 2, undefined, 10))).toEqual(['!r1|a']);
      expect(keyIds(await store.pageBackupKeys('acc-2', 1, undefined, 10))).toEqual(['!r1|a']);
    });
  });

  describe('backup upload (the service over this store)', () => {
    /** The backup service reads nothing of the context but the store. */
    const context = () => ({ store, now: () => NOW }) as unknown as ServerContext;
    let auth: AuthenticatedSession;

    beforeEach(async () => {
      const owner = account('acc-1', 'one@example.com');
      await store.insertAccount(owner);
      await store.insertSession(session('s1', 'acc-1'));
      auth = { account: owner, session: session('s1', 'acc-1') };
      await store.createBackupVersion(backupVersion('acc-1'));
    });

    type Rank = Parameters<typeof isBetterBackupKey>[0];
    /** An upload body; each key's ciphertext is its label, to tell afterwards which key the server kept. */
    const body = (keys: Array<{ session: string; rank: Rank; label: string }>): BackupUploadBody => ({
      rooms: {
        '!room:example.org': {
          sessions: Object.fromEntries(
            keys.map(({ session: id, rank, label }) => [
              id,
              { ...rank, session_data: { ephemeral: 'ephemeral', ciphertext: label, mac: 'mac' } },
            ]),
          ),
        },
      },
    });
    const rank = (is_verified: boolean, first_message_index: number, forwarded_count: number): Rank => ({
      is_verified,
      first_message_index,
      forwarded_count,
    });

    /** The spec's order (core better-key.ts), case by case: which key a second upload leaves stored. */
    const cases = [
      { session: 'verified-beats-lower-index', stored: rank(true, 5, 2), sent: rank(false, 0, 0), replaced: false },
      { session: 'higher-index-loses', stored: rank(true, 5, 2), sent: rank(true, 6, 0), replaced: false },
      { session: 'tie-keeps-stored', stored: rank(true, 5, 2), sent: rank(true, 5, 2), replaced: false },
      { session: 'fewer-forwards-win', stored: rank(true, 5, 2), sent: rank(true, 5, 1), replaced: true },
      { session: 'lower-index-wins', stored: rank(true, 5, 2), sent: rank(true, 4, 9), replaced: true },
      { session: 'verified-replaces', stored: rank(false, 0, 0), sent: rank(true, 100, 50), replaced: true },
      { session: 'unverified-lower-index', stored: rank(false, 3, 0), sent: rank(false, 2, 7), replaced: true },
    ];

    it('keeps a key unless the new one is better, and moves etag and count as keys change', async () => {
      const ctx = context();
      for (const c of cases) expect(isBetterBackupKey(c.sent, c.stored), c.session).toBe(c.replaced);

      const first = body(cases.map((c) => ({ session: c.session, rank: c.stored, label: `stored ${c.session}` })));
      expect(await uploadKeys(ctx, auth, '1', first)).toEqual({ etag: '1', count: cases.length });
      const second = body(cases.map((c) => ({ session: c.session, rank: c.sent, label: `sent ${c.session}` })));
      expect(await uploadKeys(ctx, auth, '1', second)).toEqual({ etag: '2', count: cases.length });

      const stored = await store.findBackupKeys(
        'acc-1',
        1,
        cases.map((c) => ['!room:example.org', c.session]),
      );
      for (const c of cases) {
        const row = stored.find((r) => r.session_id === c.session);
        const winner = c.replaced ? c.sent : c.stored;
        expect(row && rankOf(row), c.session).toEqual(winner);
        expect(JSON.parse(row?.session_data ?? '{}').ciphertext, c.session).toBe(
          `${c.replaced ? 'sent' : 'stored'} ${c.session}`,
        );
      }

      // Only worse or equal keys: nothing changes, not even the etag.
      const losers = cases.filter((c) => !c.replaced);
      const again = body(losers.map((c) => ({ session: c.session, rank: c.sent, label: 'again' })));
      expect(await uploadKeys(ctx, auth, '1', again)).toEqual({ etag: '2', count: cases.length });

      // A new key counts once; deleting keys lowers the count and moves the etag.
      const added = body([{ session: 'new', rank: rank(false, 0, 0), label: 'new' }]);
      expect(await uploadKeys(ctx, auth, '1', added)).toEqual({ etag: '3', count: cases.length + 1 });
      expect(await deleteKeys(ctx, auth, '1', '!room:example.org', 'new')).toEqual({
        etag: '4',
        count: cases.length,
      });
      expect(await deleteKeys(ctx, auth, '1')).toEqual({ etag: '5', count: 0 });
      expect(await store.pageBackupKeys('acc-1', 1, undefined, 100)).toEqual([]);
    });

    it('refuses an old or missing version with its LK code, storing nothing', async () => {
      const ctx = context();
      await store.createBackupVersion(backupVersion('acc-1', 'newer'));
      const keys = body([{ session: 's', rank: rank(true, 0, 0), label: 'x' }]);
      await expect(uploadKeys(ctx, auth, '1', keys)).rejects.toMatchObject({
        code: 'LK_WRONG_BACKUP_VERSION',
        details: { currentVersion: '2' },
      });
      await expect(uploadKeys(ctx, auth, '9', keys)).rejects.toMatchObject({ code: 'LK_BACKUP_NOT_FOUND' });
      expect(await store.pageBackupKeys('acc-1', 1, undefined, 10)).toEqual([]);
      expect((await store.findBackupVersion('acc-1', 1))?.etag).toBe(0);
    });
  });

  describe('account data', () => {
    beforeEach(async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      await store.insertAccount(account('acc-2', 'two@example.com'));
    });

    it('is set, read, overwritten and deleted per (account, type), content kept exactly', async () => {
      const type = 'm.secret_storage.default_key';
      expect(await store.getAccountData('acc-1', type)).toBeUndefined();
      await store.putAccountData({ account_id: 'acc-1', type, content: '{"key":"first"}' });
      expect(await store.getAccountData('acc-1', type)).toBe('{"key":"first"}');

      // Large, and with characters a driver could mangle: quotes, backslashes, non-ASCII, astral.
      const big = JSON.stringify({ key: 'second', blob: 'ключ 🔑 "\\'.repeat(5_000) });
      await store.putAccountData({ account_id: 'acc-1', type, content: big });
      expect(await store.getAccountData('acc-1', type)).toBe(big);
      expect(await store.listAccountData('acc-1', type)).toEqual([{ account_id: 'acc-1', type, content: big }]);

      expect(await store.deleteAccountData('acc-1', type)).toBe(true);
      expect(await store.deleteAccountData('acc-1', type)).toBe(false);
      expect(await store.getAccountData('acc-1', type)).toBeUndefined();
    });

    it('lists by type prefix in type order, where _ and % are plain characters', async () => {
      const types = [
        'm.secret_storage.key.b',
        'm.secret_storage.key.a',
        'm.secretXstorage.key.c',
        'm.secret_storage.default_key',
        'm.megolm_backup.v1',
        'M.SECRET_STORAGE.key.d',
      ];
      for (const type of types) await store.putAccountData({ account_id: 'acc-1', type, content: `"${type}"` });
      const list = async (prefix: string) => (await store.listAccountData('acc-1', prefix)).map((row) => row.type);

      expect(await list('m.secret_storage.key.')).toEqual(['m.secret_storage.key.a', 'm.secret_storage.key.b']);
      expect(await list('m.secret_storage.')).toEqual([
        'm.secret_storage.default_key',
        'm.secret_storage.key.a',
        'm.secret_storage.key.b',
      ]);
      expect(await list('m.secret%')).toEqual([]);
      expect(await list('')).toEqual([...types].sort());
      expect((await store.listAccountData('acc-1', 'm.megolm'))[0]?.content).toBe('"m.megolm_backup.v1"');
    });

    it('is refused for an account that does not exist', async () => {
      await expect(store.putAccountData({ account_id: 'acc-missing', type: 't', content: '{}' })).rejects.toThrow();
    });
  });

  describe('backup and account data isolation', () => {
    /** Account A's backup and data, with the same version number and ids as B's. */
    async function populateBoth() {
      for (const [id, email] of [
        ['acc-a', 'a@example.com'],
        ['acc-b', 'b@example.com'],
      ] as const) {
        await store.insertAccount(account(id, email));
        expect(await store.createBackupVersion(backupVersion(id))).toBe(1);
        await store.putBackupKeys([backupKey(id, 1, '!shared:example.org', 'same-session')]);
        await store.bumpBackupVersion(id, 1, 1, 1);
        await store.putAccountData({ account_id: id, type: 'm.secret_storage.default_key', content: `"${id}"` });
      }
    }

    it("account B reads, changes and deletes only its own rows, never A's", async () => {
      await populateBoth();
      const snapshotOfA = async () => {
        const all = await snapshot(connection);
        return ['backup_versions', 'backup_keys', 'account_data'].map((table) =>
          (all[table] ?? []).filter((row) => row['account_id'] === 'acc-a'),
        );
      };
      const before = await snapshotOfA();
      expect(before.every((rows) => rows.length === 1)).toBe(true);

      const [keyOfB] = await store.findBackupKeys('acc-b', 1, [['!shared:example.org', 'same-session']]);
      expect(keyOfB).toEqual(backupKey('acc-b', 1, '!shared:example.org', 'same-session'));
      expect(await store.pageBackupKeys('acc-b', 1, undefined, 10)).toEqual([keyOfB]);
      expect((await store.findBackupVersion('acc-b'))?.account_id).toBe('acc-b');
      expect(await store.getAccountData('acc-b', 'm.secret_storage.default_key')).toBe('"acc-b"');
      expect(await store.listAccountData('acc-b', '')).toEqual([
        { account_id: 'acc-b', type: 'm.secret_storage.default_key', content: '"acc-b"' },
      ]);

      await store.updateBackupAuthData('acc-b', 1, '{"changed":true}');
      await store.bumpBackupVersion('acc-b', 1, 5, 5);
      await store.putBackupKeys([backupKey('acc-b', 1, '!shared:example.org', 'same-session', { is_verified: 1 })]);
      await store.putAccountData({ account_id: 'acc-b', type: 'm.secret_storage.default_key', content: '"b2"' });
      expect(await store.deleteBackupKeys('acc-b', 1)).toBe(1);
      expect(await store.deleteAccountData('acc-b', 'm.secret_storage.default_key')).toBe(true);
      expect(await store.deleteBackupVersion('acc-b', 1)).toBe(true);

      expect(await snapshotOfA()).toEqual(before);
      expect(await store.getAccountData('acc-b', 'm.secret_storage.default_key')).toBeUndefined();
      expect(await store.findBackupVersion('acc-b')).toBeUndefined();
    });

    it("go with their account: deleteAccount, and the schema's cascade on a bare delete of the account row", async () => {
      await populateBoth();
      await store.createBackupVersion(backupVersion('acc-a', 'second')); // a version with no keys
      const tables = ['backup_versions', 'backup_keys', 'account_data'] as const;
      const ownersIn = async () => {
        const all = await snapshot(connection);
        return tables.map((table) => (all[table] ?? []).map((row) => row['account_id']).sort());
      };
      expect(await ownersIn()).toEqual([
        ['acc-a', 'acc-a', 'acc-b'],
        ['acc-a', 'acc-b'],
        ['acc-a', 'acc-b'],
      ]);

      await store.deleteAccount('acc-a', 'a@example.com');
      expect(await ownersIn()).toEqual([['acc-b'], ['acc-b'], ['acc-b']]);
      expect(await store.pageBackupKeys('acc-a', 1, undefined, 10)).toEqual([]);

      // Without the store's own deletes: the foreign keys' ON DELETE CASCADE (migration 002).
      await connection.db.deleteFrom('accounts').where('id', '=', 'acc-b').execute();
      expect(await ownersIn()).toEqual([[], [], []]);
    });
  });

  describe('transactions', () => {
    /** Writes to every table through `tx`, including deleting an account that existed before. */
    async function writeEverything(tx: Store) {
      await tx.insertAccount(account('acc-new', 'new@example.com'));
      await tx.insertSession(session('s-new', 'acc-new'));
      await tx.insertLoginAttempt(loginAttempt('la-new', 'new@example.com', 'acc-new'));
      await tx.replaceCode(code('c-new', 'new@example.com', 'verify'));
      await tx.replaceCode(code('c-replaced', 'old@example.com', 'verify'));
      await tx.insertResetToken(resetToken('new', 'acc-new'));
      await tx.hitRateLimit('bucket', NOW, 60_000);
      await tx.putServerSecretOnce('secret', bytes(7));
      const version = await tx.createBackupVersion(backupVersion('acc-new'));
      await tx.putBackupKeys([backupKey('acc-new', version, '!r', 's')]);
      await tx.bumpBackupVersion('acc-new', version, 1, 1);
      await tx.putAccountData({ account_id: 'acc-new', type: 'm.secret_storage.default_key', content: '{}' });
      await tx.updateCredentials('acc-old', {
        credentialId: 'cid:acc-old-new',
        opaqueRecord: bytes(1),
        wrapKB: bytes(2),
        passwordChangedAt: NOW + 1,
      });
      await tx.deleteSessions('acc-old');
      await tx.deleteAccount('acc-gone', 'gone@example.com');
    }

    beforeEach(async () => {
      await store.insertAccount(account('acc-old', 'old@example.com'));
      await store.insertSession(session('s-old', 'acc-old'));
      await store.replaceCode(code('c-old', 'old@example.com', 'verify'));
      await store.insertAccount(account('acc-gone', 'gone@example.com'));
      await store.insertSession(session('s-gone', 'acc-gone'));
    });

    it('roll back every write when the work throws, and rethrow the error', async () => {
      const before = await snapshot(connection);
      const failure = new Error('work failed');
      await expect(
        store.transaction(async (tx) => {
          await writeEverything(tx);
          // Inside the transaction its own writes are visible.
          expect((await tx.findAccountById('acc-new'))?.email).toBe('new@example.com');
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await snapshot(connection)).toEqual(before);
    });

    it('roll back the whole transaction when a nested one throws', async () => {
      const before = await snapshot(connection);
      const failure = new Error('inner work failed');
      await expect(
        store.transaction(async (tx) => {
          await tx.insertAccount(account('acc-outer', 'outer@example.com'));
          await tx.transaction(async (inner) => {
            await writeEverything(inner);
            throw failure;
          });
        }),
      ).rejects.toBe(failure);
      expect(await snapshot(connection)).toEqual(before);
    });

    it('roll back when a statement fails part-way (a unique email)', async () => {
      const before = await snapshot(connection);
      await expect(
        store.transaction(async (tx) => {
          await tx.insertSession(session('s-extra', 'acc-old'));
          await tx.insertAccount(account('acc-dup', 'old@example.com'));
        }),
      ).rejects.toThrow();
      expect(await snapshot(connection)).toEqual(before);
    });

    it('commit every write and return the result when the work succeeds', async () => {
      const result = await store.transaction(async (tx) => {
        await writeEverything(tx);
        return 'done';
      });
      expect(result).toBe('done');
      expect((await store.findAccountById('acc-new'))?.email).toBe('new@example.com');
      expect((await store.listSessions('acc-new')).map((s) => s.id)).toEqual(['s-new']);
      expect((await store.findCode('old@example.com', 'verify'))?.id).toBe('c-replaced');
      expect(await store.listSessions('acc-old')).toEqual([]);
      expect(await store.findAccountById('acc-gone')).toBeUndefined();
      expectBytes(await store.getServerSecret('secret'), bytes(7));
      expect(await store.hitRateLimit('bucket', NOW, 60_000)).toBe(2);
      expect(await store.findBackupVersion('acc-new')).toMatchObject({ version: 1, etag: 1, key_count: 1 });
      expect(keyIds(await store.pageBackupKeys('acc-new', 1, undefined, 10))).toEqual(['!r|s']);
      expect(await store.getAccountData('acc-new', 'm.secret_storage.default_key')).toBe('{}');
    });
  });

  describe('column types', () => {
    it('round-trip byte columns exactly: zero bytes, 0xff, every value, views into larger buffers', async () => {
      const backing = new Uint8Array(300).fill(0x55);
      backing.set(ALL_BYTES.subarray(0, 200), 50);
      const view = backing.subarray(50, 250); // byteOffset 50: a driver must not send the whole buffer
      const samples = [ALL_BYTES, bytes(), bytes(0), bytes(0, 0, 0), bytes(0xff), view, Buffer.from(ALL_BYTES)];

      for (const [i, sample] of samples.entries()) {
        const id = `acc-${i}`;
        await store.insertAccount(
          account(id, `${i}@example.com`, { opaque_record: sample, wrap_kb: sample, ka_sealed: sample }),
        );
        const found = (await store.findAccountById(id)) as AccountRow;
        for (const column of [found.opaque_record, found.wrap_kb, found.ka_sealed]) expectBytes(column, sample);

        await store.insertSession(session(`s-${i}`, id, { token_hash: sample }));
        expect((await store.findSessionByTokenHash(sample))?.id).toBe(`s-${i}`);
        await store.insertResetToken({ token_hash: sample, account_id: id, expires_at: NOW + 1 });
        expectBytes((await store.takeResetToken(sample, NOW))?.token_hash, sample);
        await store.insertLoginAttempt({ ...loginAttempt(`la-${i}`, 'x@example.com', id), state_sealed: sample });
        expectBytes((await store.takeLoginAttempt(`la-${i}`, NOW))?.state_sealed, sample);
        await store.deleteSessions(id);
      }
      // Token hashes that share a prefix up to a zero byte are still different keys.
      await store.insertSession(session('s-long', 'acc-0', { token_hash: bytes(0, 0, 0, 1) }));
      expect((await store.findSessionByTokenHash(bytes(0, 0, 0)))?.id).toBeUndefined();
      expect((await store.findSessionByTokenHash(bytes(0, 0, 0, 1)))?.id).toBe('s-long');
    });

    it('read times back as numbers, exactly, up to the largest safe integer', async () => {
      const big = Number.MAX_SAFE_INTEGER;
      await store.insertAccount(account('acc-1', 'one@example.com', { created_at: big, verified_at: big - 1 }));
      await store.insertSession(session('s1', 'acc-1', { expires_at: big }));
      await store.replaceCode({ ...code('c1', 'one@example.com', 'verify', big), attempts: 3 });

      const found = (await store.findAccountById('acc-1')) as AccountRow;
      const times = [found.created_at, found.verified_at, found.keys_changed_at, found.password_changed_at];
      expect(times).toEqual([big, big - 1, NOW, NOW]);
      const sessionRow = (await store.listSessions('acc-1'))[0] as SessionRow;
      const codeRow = (await store.findCode('one@example.com', 'verify')) as CodeRow;
      const numbers = [
        ...times,
        sessionRow.created_at,
        sessionRow.last_used_at,
        sessionRow.authenticated_at,
        sessionRow.expires_at,
        codeRow.expires_at,
        codeRow.attempts,
        await store.hitRateLimit('b', big, 1000),
      ];
      for (const value of numbers) expect(typeof value).toBe('number');
      expect(sessionRow.expires_at).toBe(big);
      expect(codeRow.expires_at).toBe(big);
    });
  });

  describe('indexes', () => {
    /** `table.column` for the leading column of every index, primary keys and unique constraints included. */
    async function indexedColumns(): Promise<string[]> {
      const { rows } =
        backend === 'sqlite'
          ? await sql<{ tbl: string; col: string }>`
              select m.tbl_name as tbl, i.name as col
                from sqlite_master m, pragma_index_info(m.name) i
               where m.type = 'index' and i.seqno = 0`.execute(connection.db)
          : await sql<{ tbl: string; col: string }>`
              select t.relname as tbl, a.attname as col
                from pg_index x
                join pg_class t on t.oid = x.indrelid
                join pg_namespace n on n.oid = t.relnamespace
                join pg_attribute a on a.attrelid = t.oid and a.attnum = x.indkey[0]
               where n.nspname = 'public'`.execute(connection.db);
      return rows.map((row) => `${row.tbl}.${row.col}`);
    }

    it('lead with the columns that deletes and sweeps search by, and not those every login writes', async () => {
      const indexed = await indexedColumns();
      expect(indexed).toEqual(
        expect.arrayContaining([
          // Deletes by account or email: updateCredentials, deleteAccount, replaceCode.
          'sessions.account_id',
          'reset_tokens.account_id',
          'codes.email',
          // purgeExpired's sweep of the attempts, the table that fills fastest.
          'login_attempts.expires_at',
        ]),
      );
      // Each login writes these; their rare readers (password change, the minute's sweep) scan instead.
      expect(indexed).not.toContain('login_attempts.account_id');
      expect(indexed).not.toContain('rate_limits.window_start');
    });
  });

  describe('purgeExpired', () => {
    it('deletes what expired at or before now (rate-limit windows that ended too) and keeps the rest', async () => {
      await store.insertAccount(account('acc-1', 'one@example.com'));
      for (const [label, expiresAt] of [
        ['past', NOW - 1],
        ['now', NOW],
        ['future', NOW + 1],
      ] as const) {
        await store.insertSession(session(`s-${label}`, 'acc-1', { expires_at: expiresAt }));
        await store.insertLoginAttempt(loginAttempt(`la-${label}`, 'one@example.com', 'acc-1', expiresAt));
        await store.replaceCode(code(`c-${label}`, `${label}@example.com`, 'verify', expiresAt));
        await store.insertResetToken(resetToken(label, 'acc-1', expiresAt));
        await store.insertDeviceToken(deviceToken(`d-${label}`, 'acc-1', { expires_at: expiresAt }), 10);
      }
      await store.hitRateLimit('ended-window', NOW - 2000, 1000);
      await store.hitRateLimit('open-window', NOW, 1000);
      await store.putServerSecretOnce('secret', bytes(1));

      await store.purgeExpired(NOW, 1000);

      const after = await snapshot(connection);
      expect(after.sessions?.map((r) => r['id'])).toEqual(['s-future']);
      expect(after.login_attempts?.map((r) => r['id'])).toEqual(['la-future']);
      expect(after.codes?.map((r) => r['id'])).toEqual(['c-future']);
      expect(after.reset_tokens?.map((r) => r['token_hash'])).toEqual([`hex:${hex(bytesFor('reset future'))}`]);
      expect(after.device_tokens?.map((r) => r['id'])).toEqual(['d-future']);
      expect(after.accounts).toHaveLength(1);
      expect(after.rate_limits?.map((r) => r['bucket'])).toEqual(['open-window']);
      expect(after.server_secrets).toHaveLength(1);
    });
  });
});

/**
 * Issue 7: the transaction helper runs work again after a deadlock. Only PostgreSQL can be brought to
 * one (SQLite runs one transaction at a time): two transactions touch two accounts in opposite orders,
 * each waiting after its first touch until the other has made its own, so the second touches lock each
 * other. PostgreSQL aborts one with deadlock_detected; the helper runs it again, and both commit.
 */
describe('Store on postgres: transactions that deadlock', () => {
  let store: Store;

  beforeAll(async () => {
    store = await openStore(connect(await createTestDatabase(inject('postgresUrl'), 'store_deadlock')));
    await store.insertAccount(account('acc-a', 'a@example.com'));
    await store.insertAccount(account('acc-b', 'b@example.com'));
  });
  afterAll(async () => {
    await store.close();
  });

  it('run again, and both commit', async () => {
    let firstTouches = 0;
    let runs = 0;
    /** Resolves once both transactions have made their first touch (bounded: 5 s). */
    const bothTouched = async () => {
      firstTouches += 1;
      for (let i = 0; i < 500 && firstTouches < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const crossing = (first: string, second: string) =>
      store.transaction(async (tx) => {
        runs += 1;
        const attempt = runs;
        await tx.putAccountData({ account_id: first, type: 'order', content: `${first} first` });
        if (attempt <= 2) await bothTouched(); // only the first run of each waits for the other
        await tx.putAccountData({ account_id: second, type: 'order', content: `${first} first` });
        return attempt;
      });

    const results = await Promise.all([crossing('acc-a', 'acc-b'), crossing('acc-b', 'acc-a')]);
    expect(results).toHaveLength(2);
    expect(runs).toBe(3); // one of the two ran again after PostgreSQL chose it as the deadlock's victim
    const winner = await store.getAccountData('acc-a', 'order');
    expect(await store.getAccountData('acc-b', 'order')).toBe(winner);
  });
});
