/**
 * Row types of every table, shared by both backends. Times are integer milliseconds; byte columns
 * are BLOB (SQLite) or BYTEA (PostgreSQL), read back as Uint8Array.
 */
export interface AccountRow {
  id: string;
  email: string;
  verified_at: number | null;
  created_at: number;
  /**
   * The OPAQUE credential identifier the record was made under (RFC 9807 §4): random since migration
   * 005, the email for accounts made before it. Never taken from a request.
   */
  credential_id: string;
  opaque_record: Uint8Array;
  wrap_kb: Uint8Array;
  ka_sealed: Uint8Array;
  keys_changed_at: number;
  password_changed_at: number;
}

export interface SessionRow {
  id: string;
  account_id: string;
  token_hash: Uint8Array;
  device_name: string | null;
  user_agent: string | null;
  created_at: number;
  last_used_at: number;
  authenticated_at: number;
  expires_at: number;
}

export interface LoginAttemptRow {
  id: string;
  purpose: 'login' | 'reauth';
  email: string;
  account_id: string | null;
  session_id: string | null;
  state_sealed: Uint8Array;
  expires_at: number;
  /**
   * The account's `password_changed_at` when the attempt read its OPAQUE record (null for an unknown
   * email): an attempt begun under other credentials than the account's current ones cannot finish.
   */
  password_changed_at: number | null;
  /** The device token the start presented and the server accepted, if any. */
  device_token_id: string | null;
  /**
   * JSON `[[bucket, windowStart], ...]`: the rate-limit hits the start counted as a guess, taken back
   * when this attempt finishes successfully. Null for attempts stored before migration 004.
   */
  rate_limit_hits: string | null;
}

export interface DeviceTokenRow {
  id: string;
  account_id: string;
  token_hash: Uint8Array;
  session_id: string | null;
  created_at: number;
  expires_at: number;
}

export interface CodeRow {
  id: string;
  email: string;
  purpose: 'verify' | 'reset';
  code_mac: Uint8Array;
  attempts: number;
  expires_at: number;
}

export interface ResetTokenRow {
  token_hash: Uint8Array;
  account_id: string;
  expires_at: number;
}

export interface RateLimitRow {
  bucket: string;
  window_start: number;
  hits: number;
}

export interface ServerSecretRow {
  name: string;
  value_sealed: Uint8Array;
}

export interface BackupVersionRow {
  account_id: string;
  version: number;
  algorithm: string;
  /** JSON text, kept as the client sent it (signatures cover its canonical form). */
  auth_data: string;
  etag: number;
  key_count: number;
  deleted: number;
  created_at: number;
}

export interface BackupKeyRow {
  account_id: string;
  version: number;
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: number;
  /** JSON text of `session_data`: ciphertext only the backup key opens. */
  session_data: string;
}

export interface AccountDataRow {
  account_id: string;
  type: string;
  content: string;
}

/** One oidc-provider model instance (adapter contract); `payload` is its JSON. Times in ms. */
export interface OidcPayloadRow {
  model: string;
  id: string;
  payload: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  account_id: string | null;
  expires_at: number | null;
  consumed_at: number | null;
}

export interface OauthClientRow {
  id: string;
  name: string;
  /** JSON array of exact redirect URIs. */
  redirect_uris: string;
  created_at: number;
}

export interface OauthScopeRow {
  scope: string;
  key_class: 'kA' | 'kB' | null;
  /** JSON array of client ids allowed to request the scope. */
  clients: string;
  created_at: number;
}

export interface OauthKeyRotationRow {
  account_id: string;
  scope: string;
  secret: Uint8Array;
}

/** One leaf of the transparency log (issue 10): the entry and SHA-256(0x00 || entry). */
export interface LogLeafRow {
  idx: number;
  entry: Uint8Array;
  leaf_hash: Uint8Array;
}

/** A full tile of the log: 256 hashes (8,192 bytes) and the root of the subtree they span. */
export interface LogTileRow {
  level: number;
  idx: number;
  hashes: Uint8Array;
  root: Uint8Array;
}

/** A checkpoint the log signed: its size, its root and the signed note as served. */
export interface LogCheckpointRow {
  size: number;
  root_hash: Uint8Array;
  note: string;
  created_at: number;
}

export interface Database {
  accounts: AccountRow;
  sessions: SessionRow;
  login_attempts: LoginAttemptRow;
  device_tokens: DeviceTokenRow;
  codes: CodeRow;
  reset_tokens: ResetTokenRow;
  rate_limits: RateLimitRow;
  server_secrets: ServerSecretRow;
  backup_versions: BackupVersionRow;
  backup_keys: BackupKeyRow;
  account_data: AccountDataRow;
  oidc_payloads: OidcPayloadRow;
  oauth_clients: OauthClientRow;
  oauth_scopes: OauthScopeRow;
  oauth_key_rotation: OauthKeyRotationRow;
  log_leaves: LogLeafRow;
  log_tiles: LogTileRow;
  log_checkpoints: LogCheckpointRow;
}
