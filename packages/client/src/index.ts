/**
 * @latchkey/client: the Latchkey SDK for Node and the browser.
 *
 * ```ts
 * const client = new LatchkeyClient({ serverUrl: 'http://127.0.0.1:8470' });
 * await client.signUp(email, password);           // then verifyEmail(email, code)
 * const session = await client.logIn(email, password);
 * session.kB;                                      // 32 bytes the server never saw
 * await session.logOut();                          // and they are gone
 * ```
 */

export type { KeyStretchingConfig, RoomKey, RoomKeyMeta } from '@latchkey/core';
export { type ErrorCode, isErrorCode, LatchkeyError, parseKeyStretching } from '@latchkey/core';
export {
  exportRoomKeys,
  type ImportResult,
  importRoomKeys,
  type KeyFileOptions,
  type KeyFileProgress,
} from './backup/export-file.js';
export {
  BACKUP_SECRET,
  type BackgroundListener,
  type BackupProgress,
  DEFAULT_PASSPHRASE_ITERATIONS,
  type DeleteBackupOptions,
  type EnabledBackup,
  type EnableOptions,
  KeyBackup,
  type ProgressListener,
  type RecoveryKeyCheck,
  type RecoverySecret,
  type ReplaceRecoveryKeyOptions,
  type RestoreResult,
} from './backup/key-backup.js';
export { type ClientOptions, LatchkeyClient } from './client.js';
export { LocalKeystore, type StoredRoomKey } from './keystore/keystore.js';
export type { OauthInteraction, OauthScopeRequest } from './oauth-consent.js';
export { randomBytes } from './random.js';
export {
  type AuthorizationOptions,
  type AuthorizationPending,
  type AuthorizationResult,
  finishAuthorization,
  type RefreshOptions,
  type RefreshResult,
  refreshAuthorization,
  startAuthorization,
} from './relier.js';
export { type OauthGrant, Session, type SessionState } from './session.js';
export { Transport } from './transport.js';
