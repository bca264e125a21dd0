import {
  type AccountId,
  checkKeyStretching,
  checkPassword,
  deriveSessionSecrets,
  type ExportKey,
  fromBase64Url,
  type KA,
  type KB,
  type KeyStretchingConfig,
  LatchkeyError,
  type LoginFinishResult,
  type LoginStartResult,
  normalizeEmail,
  openKeysBundle,
  type ReauthFinishResult,
  type RegistrationStart,
  type ServerConfig,
  type SessionKey,
  toBase64Url,
  unwrapKB,
  wrapKB,
} from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import { fetchInteraction, type OauthInteraction, refuseInteraction } from './oauth-consent.js';
import { randomBytes } from './random.js';
import { Session, type SessionState } from './session.js';
import { Transport } from './transport.js';

export interface ClientOptions {
  /** The server's base URL, for example `http://127.0.0.1:8470`. */
  serverUrl: string;
  /**
   * Pins the OPAQUE key stretching (Argon2id) this app expects the server to advertise: any other
   * setting, weaker or stronger, is refused with `LK_KDF_MISMATCH`. Without a pin the SDK takes what
   * the server advertises if it lies between RFC 9106's memory-constrained option and 2 GiB
   * (`LK_KDF_TOO_WEAK`, `LK_KDF_TOO_COSTLY`; see `checkKeyStretching` in core). A pin is the app's own
   * choice, so it is not held to those bounds: pin a cheap setting only for tests.
   */
  keyStretching?: KeyStretchingConfig;
  fetch?: typeof fetch;
}

/**
 * The entry point of the SDK: sign up, verify, log in, reset. A successful {@link LatchkeyClient.logIn}
 * returns a {@link Session} that holds kA and kB in memory until {@link Session.logOut}.
 */
export class LatchkeyClient {
  readonly transport: Transport;
  private config: Promise<ServerConfig> | undefined;
  /** The account each email's sign-up through this client made: {@link verifyEmail} names it. */
  private readonly signUps = new Map<string, AccountId>();

  constructor(private readonly options: ClientOptions) {
    this.transport = new Transport(options.serverUrl, options.fetch);
  }

  /**
   * The OPAQUE key stretching the server advertises, once {@link checkKeyStretching} has accepted it
   * (against the pin, if the app set one). Every use of the setting reads it here, before the password
   * is stretched or anything else is sent, so a refused setting costs nothing and leaks nothing.
   */
  async keyStretching(): Promise<KeyStretchingConfig> {
    this.config ??= this.transport.request<ServerConfig>('GET', '/v1/config').catch((error: unknown) => {
      // Not kept: one failed fetch (a network blip) must not fail every later use of this client.
      this.config = undefined;
      throw error;
    });
    const advertised: unknown = (await this.config)?.keyStretching;
    return checkKeyStretching(advertised, this.options.keyStretching);
  }

  /**
   * Creates an account: OPAQUE registration, and a fresh random kB wrapped under the export key. The
   * server mails a code; call {@link verifyEmail} with it before logging in.
   */
  async signUp(email: string, password: string): Promise<{ accountId: AccountId }> {
    checkPassword(password);
    const normalized = normalizeEmail(email);
    const kB = randomBytes(32) as KB;
    const { registrationRecord, wrapped, registrationTicket } = await this.register(
      password,
      kB,
      (registrationRequest) =>
        this.transport.request<RegistrationStart>('POST', '/v1/account/register/start', {
          body: { email: normalized, registrationRequest },
        }),
    );
    kB.fill(0);
    const result = await this.transport.request<{ accountId: string }>('POST', '/v1/account/register/finish', {
      body: { email: normalized, registrationRecord, wrapKB: toBase64Url(wrapped), registrationTicket },
    });
    this.signUps.set(normalized, result.accountId as AccountId);
    return { accountId: result.accountId as AccountId };
  }

  /**
   * Verifies the email with the mailed code, for the account its sign-up made: `accountId` when given,
   * else the one this client's own {@link signUp} of the email returned. Anyone may sign an unverified
   * email up again, which replaces the sign-up and mails a new code to the same mailbox; named, the
   * account makes that code `LK_SIGNUP_REPLACED` (sign up again) instead of verifying the stranger's
   * account. With neither, the email's current sign-up is verified, whoever made it.
   */
  async verifyEmail(email: string, code: string, options: { accountId?: string } = {}): Promise<void> {
    const normalized = normalizeEmail(email);
    const accountId = options.accountId ?? this.signUps.get(normalized);
    await this.transport.request('POST', '/v1/account/verify', {
      body: { email: normalized, code: code.trim(), ...(accountId === undefined ? {} : { accountId }) },
    });
    this.signUps.delete(normalized);
  }

  async resendVerification(email: string): Promise<void> {
    await this.transport.request('POST', '/v1/account/verify/resend', { body: { email: normalizeEmail(email) } });
  }

  /**
   * Logs in with OPAQUE; the session's bearer token and the keys come from the key exchange itself.
   * `deviceToken` is the one an earlier login on this device returned ({@link SessionState.deviceToken}):
   * with it, the login passes the limits that strangers guessing at the account can fill. Keep the new
   * one the session holds for the next login (the one presented is used up).
   */
  async logIn(
    email: string,
    password: string,
    options: { deviceName?: string; deviceToken?: string } = {},
  ): Promise<Session> {
    const normalized = normalizeEmail(email);
    const keys = await this.authenticate(
      password,
      (startLoginRequest) =>
        this.transport.request<LoginStartResult>('POST', '/v1/session/login/start', {
          body: {
            email: normalized,
            startLoginRequest,
            ...(options.deviceToken === undefined ? {} : { deviceToken: options.deviceToken }),
          },
        }),
      (loginId, finishLoginRequest) =>
        this.transport.request<LoginFinishResult>('POST', '/v1/session/login/finish', {
          body: {
            loginId,
            finishLoginRequest,
            ...(options.deviceName === undefined ? {} : { deviceName: options.deviceName }),
          },
        }),
    );
    const state: SessionState = {
      email: normalized,
      accountId: keys.result.accountId as AccountId,
      sessionId: keys.result.sessionId,
      token: keys.token,
      expiresAt: keys.result.expiresAt,
      keysChangedAt: keys.result.keysChangedAt,
      deviceToken: keys.result.deviceToken,
    };
    return new Session(this, state, { kA: keys.kA, kB: keys.kB });
  }

  /** Resumes a session from its saved state (for example the CLI's), without keys in memory. */
  resume(state: SessionState): Session {
    return new Session(this, state, undefined);
  }

  /**
   * What an app asks for in the pending authorization `uid`, before anyone logs in: the consent page
   * shows it beside its log-in form. See {@link Session.oauthInteraction}.
   */
  oauthInteraction(uid: string): Promise<OauthInteraction> {
    return fetchInteraction((method, path, body) => this.transport.request(method, path, { body }), uid);
  }

  /** Refuses the app's request without logging in; returns where the browser goes (`access_denied`). */
  refuseAuthorization(uid: string): Promise<string> {
    return refuseInteraction((method, path, body) => this.transport.request(method, path, { body }), uid);
  }

  /** Mails a reset code if the email has an account; the answer is the same either way. */
  async requestReset(email: string): Promise<void> {
    await this.transport.request('POST', '/v1/account/reset/start', { body: { email: normalizeEmail(email) } });
  }

  /**
   * Completes a reset: new password and a new random kB (the old kB cannot be recovered without the old
   * password), kA kept. Every session of the account ends; log in again afterwards.
   */
  async completeReset(email: string, code: string, newPassword: string): Promise<{ keysChangedAt: number }> {
    checkPassword(newPassword);
    // Checked before the code is sent: a refused setting must not spend it.
    await this.keyStretching();
    const { resetToken } = await this.transport.request<{ resetToken: string }>('POST', '/v1/account/reset/verify', {
      body: { email: normalizeEmail(email), code: code.trim() },
    });
    const kB = randomBytes(32) as KB;
    const { registrationRecord, wrapped, registrationTicket } = await this.register(
      newPassword,
      kB,
      (registrationRequest) =>
        this.transport.request<RegistrationStart>('POST', '/v1/account/reset/register', {
          body: { resetToken, registrationRequest },
        }),
    );
    kB.fill(0);
    return this.transport.request<{ keysChangedAt: number }>('POST', '/v1/account/reset/finish', {
      body: { resetToken, registrationRecord, wrapKB: toBase64Url(wrapped), registrationTicket },
    });
  }

  /**
   * OPAQUE registration for `password`, returning the record, kB wrapped under the new export key, and
   * the server's ticket for the finish (it names the credential identifier the record was made under).
   */
  async register(
    password: string,
    kB: KB,
    exchange: (registrationRequest: string) => Promise<RegistrationStart>,
  ): Promise<{ registrationRecord: string; wrapped: Uint8Array; registrationTicket: string }> {
    await opaque.ready;
    const keyStretching = await this.keyStretching();
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
    const { registrationResponse, registrationTicket } = await exchange(registrationRequest);
    const { registrationRecord, exportKey } = opaque.client.finishRegistration({
      clientRegistrationState,
      registrationResponse,
      password,
      keyStretching,
    });
    const wrapped = wrapKB(kB, fromBase64Url(exportKey) as ExportKey, randomBytes(12));
    return { registrationRecord, wrapped, registrationTicket };
  }

  /**
   * One OPAQUE login (or re-authentication): KE1 → KE2 → KE3. A wrong password is caught here, by the
   * client, when the server's KE2 does not verify: `LK_LOGIN_FAILED`, and KE3 is never sent.
   */
  async authenticate<R extends LoginFinishResult | ReauthFinishResult>(
    password: string,
    start: (startLoginRequest: string) => Promise<LoginStartResult>,
    finish: (loginId: string, finishLoginRequest: string) => Promise<R>,
  ): Promise<{ result: R; token: string; kA: KA; kB: KB }> {
    await opaque.ready;
    const keyStretching = await this.keyStretching();
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
    const { loginId, loginResponse } = await start(startLoginRequest);
    const login = opaque.client.finishLogin({ clientLoginState, loginResponse, password, keyStretching });
    if (login === undefined) throw new LatchkeyError('LK_LOGIN_FAILED');
    const result = await finish(loginId, login.finishLoginRequest);
    const { token, bundleKey } = deriveSessionSecrets(fromBase64Url(login.sessionKey) as SessionKey);
    const { kA, wrappedKB } = openKeysBundle(bundleKey, fromBase64Url(result.keysBundle, 'keysBundle'));
    const kB = unwrapKB(wrappedKB, fromBase64Url(login.exportKey) as ExportKey);
    bundleKey.fill(0);
    return { result, token: toBase64Url(token), kA, kB };
  }
}
