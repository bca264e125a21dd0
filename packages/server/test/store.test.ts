import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../../../test/support/postgres.js';
import { type Connection, connect } from '../src/store/database.js';
import { openStore } from '../src/store/kysely-store.js';
import type { AccountRow, CodeRow, Database, LoginAttemptRow, ResetTokenRow, SessionRow } from '../src/store/schema.js';
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
  };
}

function code(id: string, email: string, purpose: CodeRow['purpose'], expiresAt = NOW + 600_000): CodeRow {
  return { id, email, purpose, code_mac: bytesFor(`mac ${id}`), attempts: 0, expires_at: expiresAt };
}

function resetToken(label: string, accountId: string, expiresAt = NOW + 600_000): ResetTokenRow {
  return { token_hash: bytesFor(`reset ${label}`), account_id: accountId, expires_at: expiresAt };
}

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
      'rate_limits',
      'backup_versions',
      'backup_keys',
      'account_data',
    ];

    it('removes every row of the account and nothing of any other', async () => {
      const victim = { id: 'acc-victim', email: 'a_b@example.com' };
      const others = [
        { id: 'acc-lookalike', email: 'axb@example.com' },
        { id: 'acc-suffix', email: 'x:a_b@example.com' },
        { id: 'acc-plain', email: 'c@example.com' },
      ];
      for (const a of [victim, ...others]) await populate(a.id, a.email);
      await store.hitRateLimit('login:addr:127.0.0.1', NOW, 60_000);
      await store.putServerSecretOnce('ka-master-check', bytes(9, 9));
      const before = await snapshot(connection);

      await store.deleteAccount(victim.id, victim.email);

      const after = await snapshot(connection);
      const belongsToVictim = (row: Record<string, unknown>) =>
        row['id'] === victim.id ||
        row['account_id'] === victim.id ||
        row['email'] === victim.email ||
        (typeof row['bucket'] === 'string' &&
          [`login:acct:`, `code:verify:`, `code:reset:`].some(
            (prefix) => row['bucket'] === `${prefix}${victim.email}`,
          ));
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
      const row = { ...loginAttempt('la1', 'one@example.com', null), purpose: 'reauth' as const, session_id: 's9' };
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
      await store.recordCodeAttempt('c1');
      await store.recordCodeAttempt('c1');
      expect((await store.findCode('one@example.com', 'verify'))?.attempts).toBe(2);
      expect((await store.findCode('two@example.com', 'verify'))?.attempts).toBe(0);

      expect(await store.deleteCode('c1')).toBe(true);
      expect(await store.deleteCode('c1')).toBe(false);
      expect(await store.findCode('one@example.com', 'verify')).toBeUndefined();
      expect((await store.findCode('two@example.com', 'verify'))?.id).toBe('c2');
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

  describe('rate limits', () => {
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

    it('start from zero after being cleared, other buckets untouched', async () => {
      for (let i = 0; i < 3; i++) await store.hitRateLimit('a', NOW, 60_000);
      await store.hitRateLimit('b', NOW, 60_000);
      await store.clearRateLimit('a');
      expect(await store.hitRateLimit('a', NOW, 60_000)).toBe(1);
      expect(await store.hitRateLimit('b', NOW, 60_000)).toBe(2);
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
      await tx.updateCredentials('acc-old', { opaqueRecord: bytes(1), wrapKB: bytes(2), passwordChangedAt: NOW + 1 });
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

  describe('purgeExpired', () => {
    it('deletes what expired at or before now and keeps the rest, accounts and rate limits included', async () => {
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
      }
      await store.hitRateLimit('old-bucket', 0, 1000);
      await store.putServerSecretOnce('secret', bytes(1));

      await store.purgeExpired(NOW);

      const after = await snapshot(connection);
      expect(after.sessions?.map((r) => r['id'])).toEqual(['s-future']);
      expect(after.login_attempts?.map((r) => r['id'])).toEqual(['la-future']);
      expect(after.codes?.map((r) => r['id'])).toEqual(['c-future']);
      expect(after.reset_tokens?.map((r) => r['token_hash'])).toEqual([`hex:${hex(bytesFor('reset future'))}`]);
      expect(after.accounts).toHaveLength(1);
      expect(after.rate_limits).toHaveLength(1);
      expect(after.server_secrets).toHaveLength(1);
    });
  });
});
