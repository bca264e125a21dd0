import {
  type Brand,
  CODE_MAX_ATTEMPTS,
  CODE_TTL_MS,
  codeFromRandom,
  constantTimeEqual,
  DEVICE_TOKEN_LIFETIME_MS,
  decodeRegistrationTicket,
  deriveSessionSecrets,
  FRESH_AUTH_MS,
  fakeCredentialIdentifier,
  fromBase64Url,
  fromUtf8,
  hashToken,
  isRistretto255Element,
  isWellFormedEnvelope,
  type KA,
  LatchkeyError,
  LOGIN_ATTEMPT_TTL_MS,
  loginGuessLimits,
  MAX_DEVICE_TOKENS_PER_ACCOUNT,
  macCode,
  newCredentialIdentifier,
  normalizeEmail,
  openAtRest,
  openRegistrationTicket,
  REGISTRATION_TICKET_TTL_MS,
  RESET_TOKEN_TTL_MS,
  type RegistrationBinding,
  SESSION_LIFETIME_MS,
  type SessionKey,
  sealAtRest,
  sealKeysBundle,
  sealRegistrationTicket,
  toBase64Url,
  utf8,
  WRAPPED_KB_LENGTH,
} from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import type { RateLimit } from '../../config.js';
import type { ServerContext } from '../../context.js';
import type { MailMessage } from '../../mail/mailer.js';
import { rateLimitBucket } from '../../store/rate-limit-buckets.js';
import type { AccountRow, CodeRow, DeviceTokenRow, SessionRow } from '../../store/schema.js';
import type { Store } from '../../store/store.js';

/**
 * The accounts protocol on the server side: OPAQUE registration and login (RFC 9807 via
 * @serenity-kit/opaque), sessions, email codes, password change and reset, deletion. HTTP lives in
 * routes.ts; the key schedule lives in @latchkey/core.
 */

export interface AuthenticatedSession {
  session: SessionRow;
  account: AccountRow;
}

const KE3_LENGTH = 64;

const newId = (ctx: ServerContext) => toBase64Url(ctx.random(16));

/**
 * RFC 9807 sizes with ristretto255 and SHA-512: a registration request is the blinded element alone;
 * KE1 is the blinded element, a 32-byte nonce and the client's key share.
 */
const OPAQUE_MESSAGE_LENGTHS = { registrationRequest: 32, startLoginRequest: 96 } as const;

/**
 * Checks an OPAQUE message's encoding and length before the library sees it: the library reads a
 * prefix and would accept trailing bytes. Its group elements the library checks itself (opaqueStep
 * turns that failure into `LK_OPAQUE_MESSAGE_INVALID`), so they are not decoded twice on every login.
 */
function checkOpaqueMessage(text: string, field: keyof typeof OPAQUE_MESSAGE_LENGTHS): string {
  const length = OPAQUE_MESSAGE_LENGTHS[field];
  if (fromBase64Url(text, field).length !== length) {
    throw new LatchkeyError('LK_OPAQUE_MESSAGE_INVALID', `${field} must be ${length} bytes.`);
  }
  return text;
}

/** Runs an @serenity-kit/opaque step, turning its parse failures into `LK_OPAQUE_MESSAGE_INVALID`. */
function opaqueStep<T>(step: () => T, failure: 'LK_OPAQUE_MESSAGE_INVALID' | 'LK_LOGIN_FAILED'): T {
  try {
    return step();
  } catch {
    throw new LatchkeyError(failure);
  }
}

function checkWrappedKB(text: string): Uint8Array {
  const bytes = fromBase64Url(text, 'wrapKB');
  if (bytes.length !== WRAPPED_KB_LENGTH || !isWellFormedEnvelope(bytes))
    throw new LatchkeyError('LK_WRAPPED_KEY_INVALID');
  return bytes;
}

function checkRegistrationRecord(text: string): Uint8Array {
  const bytes = fromBase64Url(text, 'registrationRecord');
  // RFC 9807 §5.1.1.3 with ristretto255: client public key (32) ‖ masking key (64) ‖ envelope (96).
  if (bytes.length !== 192)
    throw new LatchkeyError('LK_OPAQUE_MESSAGE_INVALID', 'registrationRecord has the wrong length.');
  // A public key that is not a group element would be stored, then fail every login as a bad KE1.
  if (!isRistretto255Element(bytes.subarray(0, 32)))
    throw new LatchkeyError('LK_OPAQUE_MESSAGE_INVALID', 'registrationRecord holds no valid public key.');
  return bytes;
}

function rateLimited(now: number, limit: RateLimit): LatchkeyError {
  const retryAfterSeconds = Math.ceil((limit.windowMs - (now % limit.windowMs)) / 1000);
  return new LatchkeyError('LK_RATE_LIMITED', undefined, { retryAfterSeconds });
}

async function enforceRateLimit(ctx: ServerContext, bucket: string, limit: RateLimit): Promise<void> {
  const now = ctx.now();
  const hits = await ctx.store.hitRateLimit(bucket, now, limit.windowMs);
  if (hits > limit.max) throw rateLimited(now, limit);
}

/** A hit counted as a password guess: its bucket and window, so that a successful finish can take it back. */
type GuessHit = [bucket: string, windowStart: number];

/**
 * Counts one guess in each bucket, in order. If a bucket is over its limit, every hit this call made
 * is taken back before the refusal: a bucket then holds exactly the guesses it let through, and a
 * refused request (the owner's too, while strangers fill the account's bucket) costs nothing later.
 * Each hit is one atomic increment, so concurrent starts cannot pass a limit together.
 */
async function countGuess(ctx: ServerContext, buckets: ReadonlyArray<readonly [string, RateLimit]>) {
  const now = ctx.now();
  const made: GuessHit[] = [];
  for (const [bucket, limit] of buckets) {
    const hits = await ctx.store.hitRateLimit(bucket, now, limit.windowMs);
    made.push([bucket, now - (now % limit.windowMs)]);
    if (hits > limit.max) {
      await takeBackGuess(ctx, made);
      throw rateLimited(now, limit);
    }
  }
  return made;
}

async function takeBackGuess(ctx: ServerContext, hits: readonly GuessHit[]): Promise<void> {
  for (const [bucket, windowStart] of hits) await ctx.store.unhitRateLimit(bucket, windowStart);
}

/** The hits a stored attempt counted (migration 004's JSON column; none for older attempts). */
function storedGuessHits(text: string | null): GuessHit[] {
  if (text === null) return [];
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value)) return [];
  return value.filter(
    (hit): hit is GuessHit =>
      Array.isArray(hit) && hit.length === 2 && typeof hit[0] === 'string' && Number.isSafeInteger(hit[1]),
  );
}

// ---- registration and email verification -------------------------------------------------------

/**
 * OPAQUE registration, step 1, for any registration (sign-up, password change, reset): the OPRF is
 * evaluated under a fresh random credential identifier, never an existing account's (issue 8), and
 * the identifier goes back sealed in a ticket bound to `binding`, for the finish to store the record
 * under. So a registration start for someone else's email reaches no key of theirs, and the answer is
 * the same whether or not the email has an account.
 */
function startRegistration(ctx: ServerContext, binding: RegistrationBinding, registrationRequest: CheckedRequest) {
  const credentialId = newCredentialIdentifier(ctx.random(32));
  const { registrationResponse } = opaqueStep(
    () =>
      opaque.server.createRegistrationResponse({
        serverSetup: ctx.opaqueSetup,
        userIdentifier: credentialId,
        registrationRequest,
      }),
    'LK_OPAQUE_MESSAGE_INVALID',
  );
  const expiresAt = ctx.now() + REGISTRATION_TICKET_TTL_MS;
  const registrationTicket = sealRegistrationTicket(ctx.masterKey, binding, credentialId, expiresAt, ctx.random(12));
  return { registrationResponse, registrationTicket };
}

/** A registration request that {@link checkRegistrationRequest} let through: the only kind startRegistration takes. */
type CheckedRequest = Brand<string, 'CheckedRegistrationRequest'>;

/**
 * Refuses a registration request that is not one before anything is counted: RFC 9807 §5.1 with
 * ristretto255, the blinded element alone, which must be a group element. Called once per start, by
 * the route's function, which may count only what passed.
 */
function checkRegistrationRequest(text: string): CheckedRequest {
  const bytes = fromBase64Url(checkOpaqueMessage(text, 'registrationRequest'), 'registrationRequest');
  if (!isRistretto255Element(bytes)) {
    throw new LatchkeyError('LK_OPAQUE_MESSAGE_INVALID', 'registrationRequest is no valid group element.');
  }
  return text as CheckedRequest;
}

/** The credential identifier a registration start sealed for `binding`; anything else is refused. */
function ticketCredentialId(ctx: ServerContext, binding: RegistrationBinding, ticket: string): string {
  return openRegistrationTicket(ctx.masterKey, binding, ticket, ctx.now());
}

/**
 * Sign-up, step 1. Counted like a login start (a flood guard per address, a bound per email), though
 * since issue 8 it evaluates no account's key: it is still an OPRF evaluation for anyone who asks.
 * Nothing is looked up, so the answer tells nothing about the email.
 */
export async function signUpStart(ctx: ServerContext, rawEmail: string, registrationRequest: string, address: string) {
  const email = normalizeEmail(rawEmail);
  const request = checkRegistrationRequest(registrationRequest);
  const limits = ctx.config.rateLimits;
  await enforceRateLimit(ctx, rateLimitBucket.registerByAddress(address), limits.registerPerAddress);
  await enforceRateLimit(ctx, rateLimitBucket.registerByEmail(email), limits.registerPerEmail);
  return startRegistration(ctx, { purpose: 'sign-up', email }, request);
}

/**
 * Creates an unverified account and mails a verification code. kA is made here (server-side, FxA's
 * class-A key) and sealed at rest; kB arrives only as wrapKB. An unverified account with the same
 * email is replaced: until its owner proves the address, it holds nothing worth keeping.
 */
export async function register(
  ctx: ServerContext,
  rawEmail: string,
  registrationRecord: string,
  wrapKBText: string,
  registrationTicket: string,
  address: string,
): Promise<{ accountId: string }> {
  const email = normalizeEmail(rawEmail);
  const record = checkRegistrationRecord(registrationRecord);
  const wrapped = checkWrappedKB(wrapKBText);
  const credentialId = ticketCredentialId(ctx, { purpose: 'sign-up', email }, registrationTicket);
  const now = ctx.now();
  const id = newId(ctx);
  // LK_EMAIL_TAKEN tells whether an email has a verified account, so asking is metered: the asking
  // address is counted before the taken check (the transaction checks again), and a sign-up refused
  // as taken moves that counter alone.
  await enforceAddressCodeSendLimit(ctx, address);
  if ((await ctx.store.findAccountByEmail(email))?.verified_at != null) throw new LatchkeyError('LK_EMAIL_TAKEN');
  // Counted before the account is written, so a refused sign-up leaves accounts as they were; and the
  // replaced account's buckets are kept, so signing up again and again never resets the limit on mails.
  await enforceEmailCodeSendLimit(ctx, email, 'verify');
  const kA = ctx.random(32);
  await ctx.store.transaction(async (tx) => {
    const existing = await tx.findAccountByEmail(email);
    if (existing?.verified_at != null) throw new LatchkeyError('LK_EMAIL_TAKEN');
    if (existing !== undefined) await tx.deleteAccount(existing.id, existing.email, { keepRateLimits: true });
    await tx.insertAccount({
      id,
      email,
      verified_at: null,
      created_at: now,
      credential_id: credentialId,
      opaque_record: record,
      wrap_kb: wrapped,
      ka_sealed: sealAtRest(ctx.masterKey, 'kA', id, kA, ctx.random(12)),
      keys_changed_at: now,
      password_changed_at: now,
    });
  });
  kA.fill(0);
  // Awaited: every sign-up that gets this far mails a code, so the wait tells nothing, and the person
  // signing up learns if theirs could not be sent.
  await ctx.mailer.send(await newCode(ctx, { email, accountId: id }, 'verify'));
  return { accountId: id };
}

/**
 * Always accepted alike: the limits are counted before anything else, and the account's lookup, its
 * new code and the mail all happen after the answer, so neither the time taken nor a failure tells
 * whether the email has an account.
 */
export async function resendVerification(ctx: ServerContext, rawEmail: string, address: string): Promise<void> {
  const email = normalizeEmail(rawEmail);
  await enforceCodeSendLimits(ctx, email, 'verify', address);
  ctx.outbox.post(() => newCodeIf(ctx, email, 'verify', (account) => account.verified_at === null));
}

/**
 * Verifies the email's account with its code. `forAccount`, when the client names it, is the account
 * its own sign-up returned: a sign-up replaces an unverified one of the same email, and mails its code
 * to the same mailbox, so the newest code there may be a stranger's sign-up. Typed by the mailbox's
 * owner, it would verify an account whose password the stranger chose; named, it is refused
 * (`LK_SIGNUP_REPLACED`) and used up, so it verifies nothing. Checked after the code, so only the
 * mailbox's owner learns that the sign-up was replaced.
 */
export async function verifyEmail(
  ctx: ServerContext,
  rawEmail: string,
  code: string,
  forAccount?: string,
): Promise<void> {
  const email = normalizeEmail(rawEmail);
  const checked = await checkCode(ctx, email, 'verify', code);
  // The code is burned and the account verified under the email's lock (issue 7). A sign-up replacing
  // the unverified account deletes its code under the same lock: either it went first and the code is
  // gone here, or it waits and then finds the account verified. Burned outside, the code of the account
  // it replaced would verify the new one, whose password its mailbox's owner never chose.
  const replaced = await ctx.store.transaction(async (tx) => {
    const account = await useCode(tx, email, checked);
    // Used, not verified: the refusal is thrown after the commit, which keeps the code spent.
    if (forAccount !== undefined && account.id !== forAccount) return true;
    if (account.verified_at === null) await tx.markAccountVerified(account.id, ctx.now());
    return false;
  });
  if (replaced) throw new LatchkeyError('LK_SIGNUP_REPLACED');
}

/**
 * For the outbox: a new code only if the email's account, looked up in the same transaction under the
 * email's lock (which the account's deletion takes too), still wants one. Looked up apart, an account
 * deleted in between left a code behind it (issue 7).
 */
function newCodeIf(
  ctx: ServerContext,
  email: string,
  purpose: CodeRow['purpose'],
  wanted: (account: AccountRow) => boolean,
): Promise<MailMessage | undefined> {
  return ctx.store.transaction(async (tx) => {
    const account = await tx.findAccountByEmail(email);
    if (account === undefined || !wanted(account)) return undefined;
    return newCode(ctx, { email, accountId: account.id }, purpose, tx);
  });
}

const MAIL_TEXT: Record<CodeRow['purpose'], { subject: string; lead: string }> = {
  verify: { subject: 'Your Latchkey verification code', lead: 'Confirm your email address with this code' },
  reset: { subject: 'Your Latchkey password reset code', lead: 'Reset your password with this code' },
};

/** Counts a code mail against the address asking and the email it goes to; either over its limit refuses. */
async function enforceCodeSendLimits(
  ctx: ServerContext,
  email: string,
  purpose: CodeRow['purpose'],
  address: string,
): Promise<void> {
  await enforceAddressCodeSendLimit(ctx, address);
  await enforceEmailCodeSendLimit(ctx, email, purpose);
}

function enforceAddressCodeSendLimit(ctx: ServerContext, address: string): Promise<void> {
  const limit = ctx.config.rateLimits.codeSendsPerAddress;
  return enforceRateLimit(ctx, rateLimitBucket.codeSendsByAddress(address), limit);
}

function enforceEmailCodeSendLimit(ctx: ServerContext, email: string, purpose: CodeRow['purpose']): Promise<void> {
  return enforceRateLimit(ctx, rateLimitBucket.codeSends(purpose, email), ctx.config.rateLimits.codeSendsPerEmail);
}

/**
 * Stores a new code for one account (replacing any earlier one of the purpose for its email) and
 * returns the mail that carries it; the caller counted the send and sends it.
 */
async function newCode(
  ctx: ServerContext,
  { email, accountId }: { email: string; accountId: string },
  purpose: CodeRow['purpose'],
  store: Store = ctx.store,
): Promise<MailMessage> {
  const code = codeFromRandom(ctx.random(4));
  await store.replaceCode({
    id: newId(ctx),
    email,
    purpose,
    code_mac: macCode(ctx.masterKey, { purpose, email, accountId }, code),
    attempts: 0,
    expires_at: ctx.now() + CODE_TTL_MS,
  });
  const { subject, lead } = MAIL_TEXT[purpose];
  const minutes = CODE_TTL_MS / 60_000;
  return {
    to: email,
    subject,
    text: `${lead}: ${code}\n\nIt works once and expires in ${minutes} minutes. If you did not ask for it, ignore this mail.\n`,
  };
}

/** A code that matched, and the account it was mailed for. */
interface CheckedCode {
  row: CodeRow;
  account: AccountRow;
}

/**
 * Checks a one-time code without using it (the caller does, with {@link useCode}). A code allows
 * CODE_MAX_ATTEMPTS comparisons, the right one included, and each is counted before it is made, in
 * one conditional statement (issue 8): however many guesses arrive at once, no more are compared.
 * Once they are used up the code is burnt: it stays, counted out, until it expires or a new code
 * replaces it, and every submission, the right code too, is `LK_CODE_ATTEMPTS_EXHAUSTED`.
 *
 * The MAC is computed for the account the email names now (issue 8): a code mailed for an account
 * that a new sign-up replaced does not match the account that replaced it.
 */
async function checkCode(
  ctx: ServerContext,
  email: string,
  purpose: CodeRow['purpose'],
  code: string,
): Promise<CheckedCode> {
  const row = await ctx.store.countCodeAttempt(email, purpose, ctx.now(), CODE_MAX_ATTEMPTS);
  if (row === undefined) throw await uncountedRefusal(ctx, email, purpose);
  const account = await ctx.store.findAccountByEmail(email);
  if (account === undefined) throw new LatchkeyError('LK_CODE_INVALID');
  const expected = macCode(ctx.masterKey, { purpose, email, accountId: account.id }, code);
  if (!constantTimeEqual(expected, row.code_mac)) throw new LatchkeyError('LK_CODE_INVALID');
  return { row, account };
}

/**
 * Why an attempt was not counted: a live code with no attempts left is burnt, anything else is no
 * code. Telling them apart tells a stranger that the email has an account (a reset code was mailed to
 * it); that costs a metered reset request and five guesses, dearer than the one metered sign-up whose
 * LK_EMAIL_TAKEN already tells it of a verified account.
 */
async function uncountedRefusal(ctx: ServerContext, email: string, purpose: CodeRow['purpose']) {
  const row = await ctx.store.findCode(email, purpose);
  const burnt = row !== undefined && row.expires_at > ctx.now() && row.attempts >= CODE_MAX_ATTEMPTS;
  return new LatchkeyError(burnt ? 'LK_CODE_ATTEMPTS_EXHAUSTED' : 'LK_CODE_INVALID');
}

/**
 * Uses a checked code, in the caller's transaction, and returns its account as read there (under the
 * email's lock). Deleting is the use: of two concurrent right submissions only one deletes the row.
 * The email must still name the account the code was checked for; if a sign-up replaced it since, the
 * code went with it.
 */
async function useCode(tx: Store, email: string, checked: CheckedCode): Promise<AccountRow> {
  const account = await tx.findAccountByEmail(email);
  if (account?.id !== checked.account.id || !(await tx.deleteCode(checked.row.id))) {
    throw new LatchkeyError('LK_CODE_INVALID');
  }
  return account;
}

// ---- login and re-authentication ----------------------------------------------------------------

interface LoginStart {
  purpose: 'login' | 'reauth';
  email: string;
  account: AccountRow | undefined;
  sessionId: string | null;
  startLoginRequest: string;
  deviceTokenId: string | null;
  guessHits: readonly GuessHit[];
}

/**
 * Refuses a KE1 that is not one before anything is counted: the right length, and (RFC 9807 §6.1,
 * ristretto255) a blinded element and a client key share that are group elements. The nonce between
 * them is any 32 bytes.
 */
function checkStartLoginRequest(text: string): void {
  const bytes = fromBase64Url(checkOpaqueMessage(text, 'startLoginRequest'), 'startLoginRequest');
  if (!isRistretto255Element(bytes.subarray(0, 32)) || !isRistretto255Element(bytes.subarray(64, 96))) {
    throw new LatchkeyError('LK_OPAQUE_MESSAGE_INVALID', 'startLoginRequest holds no valid group element.');
  }
}

/**
 * OPAQUE KE1 → KE2, once the guess is counted (the caller counted it and takes it back if this
 * throws), under the account's credential identifier. For an unknown email a fake KE2 is made under a
 * fake identifier stable for that email, so the answer does not reveal the account.
 */
async function startOpaqueLogin(ctx: ServerContext, start: LoginStart) {
  const credentialId = start.account?.credential_id ?? fakeCredentialIdentifier(ctx.masterKey, start.email);
  const { serverLoginState, loginResponse } = opaqueStep(
    () =>
      opaque.server.startLogin({
        serverSetup: ctx.opaqueSetup,
        userIdentifier: credentialId,
        registrationRecord: start.account === undefined ? null : toBase64Url(start.account.opaque_record),
        startLoginRequest: start.startLoginRequest,
      }),
    'LK_OPAQUE_MESSAGE_INVALID',
  );
  const loginId = newId(ctx);
  await ctx.store.insertLoginAttempt({
    id: loginId,
    purpose: start.purpose,
    email: start.email,
    account_id: start.account?.id ?? null,
    session_id: start.sessionId,
    state_sealed: sealAtRest(ctx.masterKey, 'login-state', loginId, utf8(serverLoginState), ctx.random(12)),
    expires_at: ctx.now() + LOGIN_ATTEMPT_TTL_MS,
    password_changed_at: start.account?.password_changed_at ?? null,
    device_token_id: start.deviceTokenId,
    rate_limit_hits: JSON.stringify(start.guessHits),
  });
  return { loginId, loginResponse };
}

/** Counts the guess, then starts OPAQUE; a start that fails after the count takes the count back. */
async function countedStart(
  ctx: ServerContext,
  buckets: ReadonlyArray<readonly [string, RateLimit]>,
  start: Omit<LoginStart, 'guessHits'>,
) {
  const guessHits = await countGuess(ctx, buckets);
  try {
    return await startOpaqueLogin(ctx, { ...start, guessHits });
  } catch (error) {
    await takeBackGuess(ctx, guessHits);
    throw error;
  }
}

/** OPAQUE KE3: single use (the attempt row is deleted as it is read), and it must prove the password. */
async function finishOpaqueLogin(ctx: ServerContext, loginId: string, finishLoginRequest: string) {
  // RFC 9807 §6.1: KE3 is the client MAC alone, Nm = 64 bytes with SHA-512. A malformed one is refused
  // before the attempt is taken, so it neither burns the attempt nor reads as a wrong password.
  if (fromBase64Url(finishLoginRequest, 'finishLoginRequest').length !== KE3_LENGTH) {
    throw new LatchkeyError('LK_OPAQUE_MESSAGE_INVALID', 'finishLoginRequest has the wrong length.');
  }
  const attempt = await ctx.store.takeLoginAttempt(loginId, ctx.now());
  if (attempt === undefined) throw new LatchkeyError('LK_LOGIN_ATTEMPT_INVALID');
  const serverLoginState = fromUtf8(openAtRest(ctx.masterKey, 'login-state', attempt.id, attempt.state_sealed));
  const { sessionKey } = opaqueStep(
    () => opaque.server.finishLogin({ serverLoginState, finishLoginRequest }),
    'LK_LOGIN_FAILED',
  );
  // KE3 proved the password this attempt's KE2 was made from: it was no guess, so its count goes back.
  await takeBackGuess(ctx, storedGuessHits(attempt.rate_limit_hits));
  const account = attempt.account_id === null ? undefined : await ctx.store.findAccountById(attempt.account_id);
  if (account === undefined) throw new LatchkeyError('LK_LOGIN_FAILED');
  // A password change deletes the account's attempts, but a start that read the old record just before
  // the change committed can insert its attempt just after that delete: its KE2 came from the old
  // record, so the old password finishes it. Comparing times (attempt made before password_changed_at)
  // would miss a start that reads the clock after the change read it but before the change commits;
  // the attempt names the credentials it was begun under instead, and only the account's current ones
  // may finish.
  if (attempt.password_changed_at !== account.password_changed_at) throw new LatchkeyError('LK_LOGIN_ATTEMPT_INVALID');
  return { attempt, account, sessionKey: fromBase64Url(sessionKey, 'sessionKey') as SessionKey };
}

function keysBundleFor(ctx: ServerContext, account: AccountRow, bundleKey: Uint8Array): string {
  const kA = openAtRest(ctx.masterKey, 'kA', account.id, account.ka_sealed) as KA;
  const bundle = sealKeysBundle(bundleKey, kA, account.wrap_kb, ctx.random(12));
  kA.fill(0);
  return toBase64Url(bundle);
}

/** The device token the client presented, if it is a live one of this account; otherwise none. */
async function knownDevice(
  ctx: ServerContext,
  account: AccountRow | undefined,
  tokenHash: Uint8Array | undefined,
): Promise<DeviceTokenRow | undefined> {
  if (tokenHash === undefined) return undefined;
  // Found by its hash, as a session token is: the token is 256 random bits, so the lookup tells nothing.
  // Looked up for an unknown email too, so the time taken does not tell whether the email has an account.
  const row = await ctx.store.findDeviceToken(tokenHash, ctx.now());
  return account !== undefined && row?.account_id === account.id ? row : undefined;
}

/**
 * Login, KE1 → KE2. Every KE2 is a guess (see LOGIN_RATE_LIMITS): malformed input is refused first
 * and counts nothing; then a known device counts in its own bucket, and an unknown client in its
 * (account, address) bucket and the account's. A device token that is not a live one of the account
 * is ignored, so the answer is the same as without one.
 */
export async function loginStart(
  ctx: ServerContext,
  rawEmail: string,
  startLoginRequest: string,
  address: string,
  deviceToken?: string,
) {
  const email = normalizeEmail(rawEmail);
  checkStartLoginRequest(startLoginRequest);
  // Decoded whether or not the email has an account, so a malformed token is refused alike for any.
  const tokenHash = deviceToken === undefined ? undefined : hashToken(fromBase64Url(deviceToken, 'deviceToken'));
  const limits = ctx.config.rateLimits;
  const account = await ctx.store.findAccountByEmail(email);
  const device = await knownDevice(ctx, account, tokenHash);
  // The flood guard: an address's starts, whatever the email. A known device is not counted in it, so
  // an attacker behind the owner's address cannot lock the owner out with it either.
  if (device === undefined)
    await enforceRateLimit(ctx, rateLimitBucket.loginByAddress(address), limits.loginPerAddress);
  const bucketOf = {
    guessesPerDevice: () => [rateLimitBucket.loginByDevice(device?.id ?? ''), limits.loginPerDevice] as const,
    guessesPerAccountAddress: () =>
      [rateLimitBucket.loginByAccountAddress(email, address), limits.loginPerAccountAddress] as const,
    guessesPerAccount: () => [rateLimitBucket.loginByAccount(email), limits.loginPerAccount] as const,
  };
  const buckets = loginGuessLimits(device !== undefined).map((limit) => bucketOf[limit]());
  return countedStart(ctx, buckets, {
    purpose: 'login',
    email,
    account,
    sessionId: null,
    startLoginRequest,
    deviceTokenId: device?.id ?? null,
  });
}

/**
 * Login, KE3 → a session, and a new device token for this device's next login. The token presented at
 * the start (if any) is replaced, so each device holds one and a copied token ends at the next login.
 */
export async function loginFinish(
  ctx: ServerContext,
  loginId: string,
  finishLoginRequest: string,
  client: { deviceName: string | null; userAgent: string | null },
) {
  const { attempt, account, sessionKey } = await finishOpaqueLogin(ctx, loginId, finishLoginRequest);
  if (attempt.purpose !== 'login') throw new LatchkeyError('LK_LOGIN_ATTEMPT_INVALID');
  if (account.verified_at === null) throw new LatchkeyError('LK_ACCOUNT_UNVERIFIED');
  const { token, bundleKey } = deriveSessionSecrets(sessionKey);
  const now = ctx.now();
  const session: SessionRow = {
    id: newId(ctx),
    account_id: account.id,
    token_hash: hashToken(token),
    device_name: client.deviceName,
    user_agent: client.userAgent,
    created_at: now,
    last_used_at: now,
    authenticated_at: now,
    expires_at: now + SESSION_LIFETIME_MS,
  };
  const deviceToken = ctx.random(32);
  await ctx.store.transaction(async (tx) => {
    // Read again under the account's lock: a password change that committed after finishOpaqueLogin's
    // check would otherwise leave this session, made with the old password, alive after the change.
    const current = await tx.findAccountById(account.id);
    if (current === undefined) throw new LatchkeyError('LK_LOGIN_FAILED');
    if (current.password_changed_at !== attempt.password_changed_at) {
      throw new LatchkeyError('LK_LOGIN_ATTEMPT_INVALID');
    }
    await tx.insertSession(session);
    if (attempt.device_token_id !== null) await tx.deleteDeviceToken(attempt.device_token_id);
    await tx.insertDeviceToken(
      {
        id: newId(ctx),
        account_id: account.id,
        token_hash: hashToken(deviceToken),
        session_id: session.id,
        created_at: now,
        expires_at: now + DEVICE_TOKEN_LIFETIME_MS,
      },
      MAX_DEVICE_TOKENS_PER_ACCOUNT,
    );
  });
  return {
    accountId: account.id,
    sessionId: session.id,
    expiresAt: session.expires_at,
    keysChangedAt: account.keys_changed_at,
    keysBundle: keysBundleFor(ctx, account, bundleKey),
    deviceToken: toBase64Url(deviceToken),
  };
}

/**
 * Reauthentication, KE1 → KE2: the session already proved the password, so no login limit applies;
 * its own limit keeps a stolen bearer token from becoming a way to guess the password.
 */
export async function reauthStart(ctx: ServerContext, auth: AuthenticatedSession, startLoginRequest: string) {
  checkStartLoginRequest(startLoginRequest);
  const bucket = [rateLimitBucket.reauthBySession(auth.session.id), ctx.config.rateLimits.reauthPerSession] as const;
  return countedStart(ctx, [bucket], {
    purpose: 'reauth',
    email: auth.account.email,
    account: auth.account,
    sessionId: auth.session.id,
    startLoginRequest,
    deviceTokenId: null,
  });
}

/** Re-authentication refreshes the session's password check and hands the keys over again. */
export async function reauthFinish(ctx: ServerContext, auth: AuthenticatedSession, loginId: string, ke3: string) {
  const { attempt, account, sessionKey } = await finishOpaqueLogin(ctx, loginId, ke3);
  if (attempt.purpose !== 'reauth' || attempt.session_id !== auth.session.id) {
    throw new LatchkeyError('LK_LOGIN_ATTEMPT_INVALID');
  }
  const now = ctx.now();
  await ctx.store.setSessionAuthenticatedAt(auth.session.id, now);
  const { bundleKey } = deriveSessionSecrets(sessionKey);
  return {
    authenticatedAt: now,
    keysChangedAt: account.keys_changed_at,
    keysBundle: keysBundleFor(ctx, account, bundleKey),
  };
}

/** Resolves a bearer token to its live session; anything else is `LK_UNAUTHORIZED`. */
export async function authenticate(ctx: ServerContext, token: Uint8Array): Promise<AuthenticatedSession> {
  const session = await ctx.store.findSessionByTokenHash(hashToken(token));
  const now = ctx.now();
  if (session === undefined || session.expires_at <= now) throw new LatchkeyError('LK_UNAUTHORIZED');
  const account = await ctx.store.findAccountById(session.account_id);
  if (account === undefined) throw new LatchkeyError('LK_UNAUTHORIZED');
  // Writes at most once a minute per session, so reads do not turn into writes.
  if (now - session.last_used_at > 60_000) await ctx.store.touchSession(session.id, now);
  return { session, account };
}

/**
 * Sensitive and destructive actions (password change, account deletion, deleting backups and secrets,
 * replacing a secret, a storage key or a backup's auth_data with something else) need the password
 * proved within FRESH_AUTH_MS, not just a bearer token: `LK_REAUTH_REQUIRED`.
 */
export function requireFreshAuth(ctx: ServerContext, auth: AuthenticatedSession): void {
  if (ctx.now() - auth.session.authenticated_at > FRESH_AUTH_MS) throw new LatchkeyError('LK_REAUTH_REQUIRED');
}

// ---- sessions ----------------------------------------------------------------------------------

export async function listSessions(ctx: ServerContext, auth: AuthenticatedSession) {
  const rows = await ctx.store.listSessions(auth.account.id);
  const now = ctx.now();
  return rows
    .filter((row) => row.expires_at > now)
    .map((row) => ({
      sessionId: row.id,
      deviceName: row.device_name,
      userAgent: row.user_agent,
      createdAt: row.created_at,
      lastUsedAt: row.last_used_at,
      authenticatedAt: row.authenticated_at,
      expiresAt: row.expires_at,
      current: row.id === auth.session.id,
    }));
}

/**
 * Ends a session. Revoking it (`revokeDevice`, the sessions list's revoke) also revokes the device
 * token its login issued: the device is no longer trusted. Logging out keeps it, for the next login.
 */
export async function revokeSession(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  sessionId: string,
  options: { revokeDevice: boolean },
) {
  await ctx.store.transaction(async (tx) => {
    if (!(await tx.deleteSession(auth.account.id, sessionId))) throw new LatchkeyError('LK_SESSION_NOT_FOUND');
    if (options.revokeDevice) await tx.deleteSessionDeviceTokens(auth.account.id, sessionId);
  });
}

// ---- password change, reset, deletion -----------------------------------------------------------

/**
 * Password change, step 1: only inside a session whose password was checked lately, and under a new
 * random credential identifier that the finish swaps in with the new record; the account's current
 * key is never evaluated for anyone but its own login.
 */
export function passwordChangeStart(ctx: ServerContext, auth: AuthenticatedSession, registrationRequest: string) {
  requireFreshAuth(ctx, auth);
  const request = checkRegistrationRequest(registrationRequest);
  return startRegistration(ctx, { purpose: 're-register', accountId: auth.account.id }, request);
}

/** New OPAQUE record and a new wrapKB of the same kB, in one transaction; every other session ends. */
export async function passwordChangeFinish(
  ctx: ServerContext,
  auth: AuthenticatedSession,
  registrationRecord: string,
  wrapKBText: string,
  registrationTicket: string,
): Promise<number> {
  requireFreshAuth(ctx, auth);
  const record = checkRegistrationRecord(registrationRecord);
  const wrapped = checkWrappedKB(wrapKBText);
  const binding = { purpose: 're-register', accountId: auth.account.id } as const;
  const credentialId = ticketCredentialId(ctx, binding, registrationTicket);
  return ctx.store.transaction(async (tx) => {
    await tx.updateCredentials(auth.account.id, {
      credentialId,
      opaqueRecord: record,
      wrapKB: wrapped,
      passwordChangedAt: ctx.now(),
      keepDeviceTokensOf: auth.session.id,
    });
    return tx.deleteSessions(auth.account.id, auth.session.id);
  });
}

/**
 * Always accepted alike, so the answer does not tell whether the email has an account: the limits are
 * counted before anything else, and the lookup, the new code and the mail happen after the answer.
 */
export async function resetStart(ctx: ServerContext, rawEmail: string, address: string): Promise<void> {
  const email = normalizeEmail(rawEmail);
  await enforceCodeSendLimits(ctx, email, 'reset', address);
  ctx.outbox.post(() => newCodeIf(ctx, email, 'reset', () => true));
}

/** Trades a reset code for a reset token of the account the code was mailed for, in one transaction. */
export async function resetVerify(ctx: ServerContext, rawEmail: string, code: string) {
  const email = normalizeEmail(rawEmail);
  const checked = await checkCode(ctx, email, 'reset', code);
  const token = ctx.random(32);
  const expiresAt = ctx.now() + RESET_TOKEN_TTL_MS;
  await ctx.store.transaction(async (tx) => {
    const account = await useCode(tx, email, checked);
    await tx.insertResetToken({ token_hash: hashToken(token), account_id: account.id, expires_at: expiresAt });
  });
  return { resetToken: toBase64Url(token), expiresAt };
}

async function accountForResetToken(ctx: ServerContext, resetToken: string): Promise<AccountRow> {
  const row = await ctx.store.findResetToken(hashToken(fromBase64Url(resetToken, 'resetToken')), ctx.now());
  const account = row === undefined ? undefined : await ctx.store.findAccountById(row.account_id);
  if (account === undefined) throw new LatchkeyError('LK_RESET_TOKEN_INVALID');
  return account;
}

/** Reset, step 1: only with a reset token (the mailed code's), under a new random credential identifier. */
export async function resetRegister(ctx: ServerContext, resetToken: string, registrationRequest: string) {
  const account = await accountForResetToken(ctx, resetToken);
  const request = checkRegistrationRequest(registrationRequest);
  return startRegistration(ctx, { purpose: 're-register', accountId: account.id }, request);
}

/**
 * Reset: a new OPAQUE record and a new kB (the client made it; the old kB is gone with the old
 * password), kA kept, keysChangedAt moved so scoped keys rotate, every session ended.
 */
export async function resetFinish(
  ctx: ServerContext,
  resetToken: string,
  registrationRecord: string,
  wrapKBText: string,
  registrationTicket: string,
) {
  const record = checkRegistrationRecord(registrationRecord);
  const wrapped = checkWrappedKB(wrapKBText);
  const tokenHash = hashToken(fromBase64Url(resetToken, 'resetToken'));
  decodeRegistrationTicket(registrationTicket); // malformed input is refused before the token is looked at
  const now = ctx.now();
  await ctx.store.transaction(async (tx) => {
    const row = await tx.takeResetToken(tokenHash, now);
    const account = row === undefined ? undefined : await tx.findAccountById(row.account_id);
    if (account === undefined) throw new LatchkeyError('LK_RESET_TOKEN_INVALID');
    // Opened inside: a bad ticket rolls the transaction back, so the reset token is not spent on it.
    const credentialId = ticketCredentialId(ctx, { purpose: 're-register', accountId: account.id }, registrationTicket);
    await tx.updateCredentials(account.id, {
      credentialId,
      opaqueRecord: record,
      wrapKB: wrapped,
      passwordChangedAt: now,
      keysChangedAt: now,
    });
    await tx.deleteSessions(account.id);
    if (account.verified_at === null) await tx.markAccountVerified(account.id, now);
  });
  return { keysChangedAt: now };
}

export async function deleteAccount(ctx: ServerContext, auth: AuthenticatedSession): Promise<void> {
  requireFreshAuth(ctx, auth);
  // Two deletes can both pass authentication before either commits; the one that finds the account
  // gone answers as any later request with that token would, not with a second success.
  if (!(await ctx.store.deleteAccount(auth.account.id, auth.account.email))) throw new LatchkeyError('LK_UNAUTHORIZED');
}

export function accountInfo(auth: AuthenticatedSession) {
  const { account } = auth;
  return {
    accountId: account.id,
    email: account.email,
    verified: account.verified_at !== null,
    createdAt: account.created_at,
    keysChangedAt: account.keys_changed_at,
    passwordChangedAt: account.password_changed_at,
  };
}
