import type { LogStore } from './log-store.js';
import type { OauthStore } from './oauth-store.js';
import type {
  AccountDataRow,
  AccountRow,
  BackupKeyRow,
  BackupVersionRow,
  CodeRow,
  DeviceTokenRow,
  LoginAttemptRow,
  ResetTokenRow,
  SessionRow,
} from './schema.js';

/**
 * The one storage interface every module uses (conventions §3). Both backends implement it through
 * the same Kysely code, and one test suite (packages/server/test/store.test.ts) runs on each.
 */
export interface Store {
  /**
   * Runs `work` in one transaction: all of its writes land, or none do. Inside it, the accounts it
   * touches and the emails it looks up stay locked until it ends (kysely-store.ts), so what it read
   * holds while it writes; a write for an account deleted meanwhile is `LK_UNAUTHORIZED`. After a
   * deadlock or serialization failure `work` runs again (a few times at most), so it must do nothing
   * outside the store that it cannot repeat.
   */
  transaction<T>(work: (tx: Store) => Promise<T>): Promise<T>;

  /** The OAuth module's tables (oauth-store.ts). */
  readonly oauth: OauthStore;
  /** The transparency log's tables (log-store.ts). */
  readonly log: LogStore;

  findAccountByEmail(email: string): Promise<AccountRow | undefined>;
  findAccountById(id: string): Promise<AccountRow | undefined>;
  insertAccount(row: AccountRow): Promise<void>;
  markAccountVerified(id: string, at: number): Promise<void>;
  /**
   * New OPAQUE record and wrapKB. The account's pending login attempts, reset tokens, reset code and
   * device tokens end with the old ones (but the device tokens of `keepDeviceTokensOf`, the session
   * that changed the password); its verification code and other accounts' rows are kept.
   */
  updateCredentials(
    id: string,
    change: {
      credentialId: string;
      opaqueRecord: Uint8Array;
      wrapKB: Uint8Array;
      passwordChangedAt: number;
      keysChangedAt?: number;
      keepDeviceTokensOf?: string;
    },
  ): Promise<void>;
  /**
   * Removes every row of the account. `keepRateLimits` keeps the buckets named by its email: an
   * unverified account replaced by a new sign-up must not reset the limit on mails to that address.
   */
  /** Deletes the account and all it owns; false when it was already gone (a delete that lost a race). */
  deleteAccount(id: string, email: string, options?: { keepRateLimits?: boolean }): Promise<boolean>;

  insertSession(row: SessionRow): Promise<void>;
  findSessionByTokenHash(tokenHash: Uint8Array): Promise<SessionRow | undefined>;
  touchSession(id: string, at: number): Promise<void>;
  setSessionAuthenticatedAt(id: string, at: number): Promise<void>;
  listSessions(accountId: string): Promise<SessionRow[]>;
  deleteSession(accountId: string, sessionId: string): Promise<boolean>;
  /** Deletes the account's sessions except `keepId` (all when undefined); returns how many went. */
  deleteSessions(accountId: string, keepId?: string): Promise<number>;

  insertLoginAttempt(row: LoginAttemptRow): Promise<void>;
  /** Removes and returns an unexpired attempt: each attempt can be finished at most once. */
  takeLoginAttempt(id: string, now: number): Promise<LoginAttemptRow | undefined>;

  /**
   * Stores a device token, then keeps only the account's `keep` newest (by creation time), so clients
   * that never present theirs cannot grow the table.
   */
  insertDeviceToken(row: DeviceTokenRow, keep: number): Promise<void>;
  /** The unexpired device token with this hash. */
  findDeviceToken(tokenHash: Uint8Array, now: number): Promise<DeviceTokenRow | undefined>;
  deleteDeviceToken(id: string): Promise<void>;
  /** Revokes the device tokens issued with one session of the account. */
  deleteSessionDeviceTokens(accountId: string, sessionId: string): Promise<void>;

  /** Stores a new code for (email, purpose), replacing any earlier one. */
  replaceCode(row: CodeRow): Promise<void>;
  findCode(email: string, purpose: CodeRow['purpose']): Promise<CodeRow | undefined>;
  /**
   * Counts one attempt at the live code of (email, purpose), in one conditional statement, and returns
   * the code as counted; nothing, and nothing counted, if there is no unexpired code or its `maxAttempts`
   * are used up. Counting comes before comparing (issue 8): concurrent guesses each take one of the
   * attempts left, so no more than `maxAttempts` comparisons are ever made.
   */
  countCodeAttempt(
    email: string,
    purpose: CodeRow['purpose'],
    now: number,
    maxAttempts: number,
  ): Promise<CodeRow | undefined>;
  deleteCode(id: string): Promise<boolean>;

  insertResetToken(row: ResetTokenRow): Promise<void>;
  /** Removes and returns an unexpired reset token (single use). */
  takeResetToken(tokenHash: Uint8Array, now: number): Promise<ResetTokenRow | undefined>;
  findResetToken(tokenHash: Uint8Array, now: number): Promise<ResetTokenRow | undefined>;

  /** Counts one hit in a fixed window; returns the hits in the current window, this one included. */
  hitRateLimit(bucket: string, now: number, windowMs: number): Promise<number>;
  /** Takes back one hit counted in the window that starts at `windowStart`; nothing if that window is over. */
  unhitRateLimit(bucket: string, windowStart: number): Promise<void>;

  getServerSecret(name: string): Promise<Uint8Array | undefined>;
  /** Stores `value` unless a value is already there; returns the value that is stored after the call. */
  putServerSecretOnce(name: string, value: Uint8Array): Promise<Uint8Array>;

  /** Creates the next backup version (never reusing a number, deleted ones included). */
  createBackupVersion(row: Omit<BackupVersionRow, 'version' | 'etag' | 'key_count' | 'deleted'>): Promise<number>;
  /** A live (not deleted) version, or the newest live one when `version` is undefined. */
  findBackupVersion(accountId: string, version?: number): Promise<BackupVersionRow | undefined>;
  updateBackupAuthData(accountId: string, version: number, authData: string): Promise<void>;
  /** Marks the version deleted and removes its keys; true if it was live. */
  deleteBackupVersion(accountId: string, version: number): Promise<boolean>;
  /** True if the account ever had this version, deleted or not (numbers are never reused). */
  backupVersionExisted(accountId: string, version: number): Promise<boolean>;
  /** Adds to the version's etag and key count. */
  bumpBackupVersion(accountId: string, version: number, etagDelta: number, countDelta: number): Promise<void>;
  /** The stored keys among `pairs` ([room_id, session_id]) of one version. */
  findBackupKeys(accountId: string, version: number, pairs: Array<[string, string]>): Promise<BackupKeyRow[]>;
  /** Inserts or replaces keys (the caller has already decided each one is better). */
  putBackupKeys(rows: BackupKeyRow[]): Promise<void>;
  /** Keys ordered by (room_id, session_id), strictly after `after` when given. */
  pageBackupKeys(
    accountId: string,
    version: number,
    after: [string, string] | undefined,
    limit: number,
  ): Promise<BackupKeyRow[]>;
  /** Deletes the version's keys, of one room or one session when given; returns how many went. */
  deleteBackupKeys(accountId: string, version: number, roomId?: string, sessionId?: string): Promise<number>;

  getAccountData(accountId: string, type: string): Promise<string | undefined>;
  listAccountData(accountId: string, typePrefix: string): Promise<AccountDataRow[]>;
  putAccountData(row: AccountDataRow): Promise<void>;
  deleteAccountData(accountId: string, type: string): Promise<boolean>;

  /**
   * Deletes expired attempts, codes, tokens, device tokens and sessions, and rate-limit rows whose window (at most
   * `rateLimitWindowMs`, the longest configured) has ended.
   */
  purgeExpired(now: number, rateLimitWindowMs: number): Promise<void>;
  close(): Promise<void>;
}
