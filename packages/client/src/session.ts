import {
  type AccountId,
  type AccountInfo,
  checkPassword,
  constantTimeEqual,
  FRESH_AUTH_MS,
  fromBase64Url,
  type KA,
  type KB,
  LatchkeyError,
  type LoginStartResult,
  type ReauthFinishResult,
  type RegistrationStart,
  type SessionSummary,
  sha256Digest,
  toBase64Url,
  toHex,
} from '@latchkey/core';
import { matrixCrypto } from '#platform';
import { KeyBackup } from './backup/key-backup.js';
import type { LatchkeyClient } from './client.js';
import { LocalKeystore } from './keystore/keystore.js';
import { fetchInteraction, grantInteraction, type OauthInteraction, refuseInteraction } from './oauth-consent.js';

/** What identifies a session between runs; it holds no key, only the bearer token. */
export interface SessionState {
  email: string;
  accountId: AccountId;
  sessionId: string;
  /** The bearer token (base64url). Treat it like a password: it opens the account until it expires. */
  token: string;
  expiresAt: number;
  keysChangedAt: number;
  /**
   * This device's token from the login (base64url): pass it to the next {@link LatchkeyClient.logIn}
   * for this email. It outlives the session (logging out keeps it valid) but not a password change
   * made elsewhere, a reset, the session's revocation or the account's deletion.
   */
  deviceToken?: string;
}

interface Keys {
  kA: KA;
  kB: KB;
}

/** One app's OAuth grant, as `GET /v1/oauth/grants` lists it. */
export interface OauthGrant {
  grantId: string;
  clientId: string;
  clientName: string;
  scopes: string[];
}

/**
 * A logged-in session. It holds kA and kB in memory (after a login or re-authentication) and forgets
 * them at {@link logOut}.
 */

export class Session {
  private keys: Keys | undefined;
  /** When this session last proved the password (this machine's clock): a login or a re-authentication. */
  private authenticatedAt: number | undefined;
  /** Keystores opened from this session, closed when it logs out. */
  private readonly keystores = new Set<LocalKeystore>();
  /** Backups made for this session's keystores: their background uploads stop when it logs out. */
  private readonly backups = new Set<KeyBackup>();

  constructor(
    private readonly client: LatchkeyClient,
    private readonly current: SessionState,
    keys: Keys | undefined,
  ) {
    this.keys = keys;
    // Keys come with a login only; a resumed session's proof is of unknown age, so never fresh here.
    if (keys !== undefined) this.authenticatedAt = Date.now();
  }

  get state(): Readonly<SessionState> {
    return this.current;
  }

  get accountId(): AccountId {
    return this.current.accountId;
  }

  /** True while kA and kB are in memory. */
  get hasKeys(): boolean {
    return this.keys !== undefined;
  }

  /** kA, the key the server can restore after a reset. Throws `LK_NOT_LOGGED_IN` once logged out. */
  get kA(): KA {
    return this.requireKeys().kA;
  }

  /** kB, the key only the password (or a recovery path) opens. */
  get kB(): KB {
    return this.requireKeys().kB;
  }

  /**
   * A short public fingerprint of kB: the first 4 bytes of SHA-256(kB) in hex. It lets a person see
   * that a password change kept kB and that a reset replaced it; 32 bits of a hash of a 256-bit key
   * tell an onlooker nothing useful about the key.
   */
  get kBFingerprint(): string {
    return toHex(sha256Digest(this.kB)).slice(0, 8);
  }

  /**
   * True while the keys are in memory and the password was proved recently enough for the server's
   * sensitive actions (consenting to an app, password change), with a minute to spare for the action
   * itself. Judged on this machine's clock, so a guide for what to show: the server still decides
   * (`LK_REAUTH_REQUIRED`).
   */
  isFresh(now = Date.now()): boolean {
    return this.hasKeys && this.authenticatedAt !== undefined && now - this.authenticatedAt < FRESH_AUTH_MS - 60_000;
  }

  private requireKeys(): Keys {
    if (this.keys === undefined)
      throw new LatchkeyError('LK_NOT_LOGGED_IN', 'No keys in memory: log in or re-authenticate.');
    return this.keys;
  }

  /**
   * Opens this device's encrypted keystore (a file path in Node, an IndexedDB name in a browser).
   * It needs kB, so it opens only on a logged-in session.
   */
  async openKeystore(location: string): Promise<LocalKeystore> {
    const keystore = await LocalKeystore.open(location, this.kB);
    this.keystores.add(keystore);
    return keystore;
  }

  /** Server-side key backup of `keystore`'s keys, for this account. */
  keyBackup(keystore: LocalKeystore): KeyBackup {
    const backup = new KeyBackup(
      (method, path, body) => this.request(method, path, body),
      this.accountId,
      () => this.kB,
      keystore,
      matrixCrypto,
      (password) => this.reauthenticate(password),
    );
    this.backups.add(backup);
    return backup;
  }

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.client.transport.request<T>(method, path, {
      token: this.current.token,
      ...(body === undefined ? {} : { body }),
    });
  }

  async account(): Promise<AccountInfo> {
    return this.request<AccountInfo>('GET', '/v1/account');
  }

  async listSessions(): Promise<SessionSummary[]> {
    return (await this.request<{ sessions: SessionSummary[] }>('GET', '/v1/sessions')).sessions;
  }

  /** The apps this account granted through OAuth (issue 9), with their scopes. */
  async listOauthGrants(): Promise<OauthGrant[]> {
    return (await this.request<{ grants: OauthGrant[] }>('GET', '/v1/oauth/grants')).grants;
  }

  /** Revokes an app's grant: its tokens stop working. */
  async revokeOauthGrant(grantId: string): Promise<void> {
    await this.request('DELETE', `/v1/oauth/grants/${encodeURIComponent(grantId)}`);
  }

  /**
   * What an app asks for in the pending authorization `uid` (the consent page's `#/oauth/consent/<uid>`).
   * An unknown, expired or other browser's uid is `LK_OAUTH_INTERACTION_INVALID`.
   */
  oauthInteraction(uid: string): Promise<OauthInteraction> {
    return fetchInteraction((method, path, body) => this.request(method, path, body), uid);
  }

  /**
   * Grants the app's request as this account: derives the app's scoped keys here from kB (or kA, by
   * each scope's class), encrypts them to the app's keys_jwk, and posts only that ciphertext. Returns
   * the URL to send the browser to. Needs the keys in memory (`LK_NOT_LOGGED_IN`) and a fresh session
   * (`LK_REAUTH_REQUIRED`: {@link reauthenticate} first).
   */
  consentToAuthorization(uid: string): Promise<string> {
    return grantInteraction(
      (method, path, body) => this.request(method, path, body),
      uid,
      () => ({ uid: fromBase64Url(this.accountId, 'accountId'), kA: this.kA, kB: this.kB }),
    );
  }

  /** Refuses the app's request: returns the URL to send the browser to; the app gets `access_denied`. */
  refuseAuthorization(uid: string): Promise<string> {
    return refuseInteraction((method, path, body) => this.request(method, path, body), uid);
  }

  async revokeSession(sessionId: string): Promise<void> {
    await this.request('DELETE', `/v1/sessions/${encodeURIComponent(sessionId)}`);
  }

  /**
   * Ends the session on the server and wipes kA and kB from memory (even if the server is
   * unreachable); keystores opened from this session are closed, their keys wiped too.
   */
  async logOut(): Promise<void> {
    this.forgetKeys();
    const backups = [...this.backups];
    const keystores = [...this.keystores];
    this.backups.clear();
    this.keystores.clear();
    // Uploads stop before their keystores close; a failure to close one does not keep the session alive.
    await Promise.allSettled(backups.map((backup) => backup.stop()));
    await Promise.allSettled(keystores.map((keystore) => keystore.close()));
    try {
      await this.request('POST', '/v1/session/logout');
    } catch (error) {
      // Already ended elsewhere (revoked, expired, password changed): the outcome the caller wanted.
      if (!(error instanceof LatchkeyError && error.code === 'LK_UNAUTHORIZED')) throw error;
    }
  }

  /** Wipes the keys from memory without telling the server. */
  forgetKeys(): void {
    if (this.keys === undefined) return;
    this.keys.kA.fill(0);
    this.keys.kB.fill(0);
    this.keys = undefined;
  }

  /**
   * Proves the password again (OPAQUE over the current session), which marks the session fresh for
   * sensitive actions and brings kA and kB back into memory.
   */
  async reauthenticate(password: string): Promise<void> {
    const keys = await this.client.authenticate<ReauthFinishResult>(
      password,
      (startLoginRequest) => this.request<LoginStartResult>('POST', '/v1/session/reauth/start', { startLoginRequest }),
      (loginId, finishLoginRequest) =>
        this.request<ReauthFinishResult>('POST', '/v1/session/reauth/finish', { loginId, finishLoginRequest }),
    );
    if (this.keys !== undefined && !constantTimeEqual(this.keys.kB, keys.kB)) {
      throw new LatchkeyError('LK_KEY_UNWRAP_FAILED', 'The server returned a different kB for this account.');
    }
    this.forgetKeys();
    this.keys = { kA: keys.kA, kB: keys.kB };
    this.authenticatedAt = Date.now();
    this.current.keysChangedAt = keys.result.keysChangedAt;
  }

  /**
   * Changes the password and keeps kB: re-authenticates with the old password, registers the new one
   * and rewraps the same kB under the new export key, in one server transaction. Every other session
   * of the account ends; this one stays.
   */
  async changePassword(oldPassword: string, newPassword: string): Promise<{ revokedSessions: number }> {
    checkPassword(newPassword);
    await this.reauthenticate(oldPassword);
    const { registrationRecord, wrapped, registrationTicket } = await this.client.register(
      newPassword,
      this.kB,
      (registrationRequest) =>
        this.request<RegistrationStart>('POST', '/v1/account/password/start', { registrationRequest }),
    );
    return this.request<{ revokedSessions: number }>('POST', '/v1/account/password/finish', {
      registrationRecord,
      wrapKB: toBase64Url(wrapped),
      registrationTicket,
    });
  }

  /** Deletes the account and everything the server holds for it, after re-checking the password. */
  async deleteAccount(password: string): Promise<void> {
    await this.reauthenticate(password);
    await this.request('DELETE', '/v1/account');
    this.forgetKeys();
  }
}
