import { LatchkeyError } from '../errors.js';

/** Minimum password length (NIST SP 800-63B §5.1.1.2: at least 8 characters). Checked by the client. */
export const MIN_PASSWORD_LENGTH = 8;

/** Sessions live 30 days; sensitive actions need a password check within the last 10 minutes. */
export const SESSION_LIFETIME_MS = 30 * 24 * 3600 * 1000;
export const FRESH_AUTH_MS = 10 * 60 * 1000;
/** A login attempt (KE2 sent, KE3 awaited) and a one-time code expire quickly. */
export const LOGIN_ATTEMPT_TTL_MS = 2 * 60 * 1000;
export const CODE_TTL_MS = 15 * 60 * 1000;
export const RESET_TOKEN_TTL_MS = 15 * 60 * 1000;
/**
 * Comparisons a one-time code allows, the right one included. Each is counted before it is made, and a
 * code whose count is used up is burnt: refused even when right, until a new code replaces it.
 */
export const CODE_MAX_ATTEMPTS = 5;

/** A limit on events: at most `max` within one fixed window of `windowMs`. */
export interface RateLimit {
  max: number;
  windowMs: number;
}

/**
 * What a login start costs, and why starts are what is counted. In OPAQUE the client tests its
 * password against KE2 alone (RFC 9807 §6.4: the envelope recovered from KE2 opens only under the
 * right password), so every KE2 the server hands out is one password guess, and a wrong guess never
 * sends KE3: a limit on failed finishes would count nothing an attacker does. So a start that gets a
 * KE2 counts as a failed guess from the moment it is answered, and the successful finish of that
 * same attempt takes its count back: what stays counted is exactly the guesses that did not prove
 * the password (a KE3 that fails, or none at all). A refusal of malformed input is made before any
 * count, so it counts nothing.
 *
 * Which limits a guess counts in depends on whether the client proves a device token, the OWASP
 * "device cookie" (a random 256-bit token the server issued to it at an earlier successful login):
 * - An unknown client counts in its (account, address) bucket, the tight limit, and in the account's
 *   bucket, which bounds the guesses of an attacker with many addresses. Strangers can fill the
 *   account's bucket; when they do, unknown clients wait, but known devices do not.
 * - A known device counts in its own token's bucket instead, so no stranger can hold it back, and a
 *   stolen token gives a thief no more guesses than one address would have.
 * Malformed input, and the requests of a session (reauthentication), count in none of these.
 */
export const LOGIN_RATE_LIMITS = {
  /**
   * Starts from one address, whatever the email: a flood guard only, loose enough for many people
   * behind one NAT (a person starts a login a few times a minute at most). A known device is not
   * counted here, so an attacker sharing the owner's address cannot lock the owner out with it.
   */
  startsPerAddress: { max: 60, windowMs: 60_000 },
  /**
   * Unproven guesses at one account from one address: the tight limit. Ten lets the owner mistype
   * freely from a new device; one address can then test at most 40 passwords an hour.
   */
  guessesPerAccountAddress: { max: 10, windowMs: 15 * 60_000 },
  /**
   * Unproven guesses at one account from all unknown clients together: what keeps guessing slow for
   * an attacker with many addresses (at most 720 a day, far below what online guessing of a
   * non-trivial password needs; NIST SP 800-63B §5.2.2 allows up to 100 consecutive failures). The
   * owner on a known device passes it, so filling it locks no known device out.
   */
  guessesPerAccount: { max: 30, windowMs: 60 * 60_000 },
  /** Unproven guesses with one device token: a stolen token is worth no more than one address. */
  guessesPerDevice: { max: 10, windowMs: 15 * 60_000 },
  /**
   * Unproven reauthentications of one session. Reauthentication is not a login: the session already
   * proved the password, and login limits never block it. A stolen bearer token must not become a
   * way to guess the password (and with it reach kB), so this is tighter than any login limit.
   */
  reauthPerSession: { max: 5, windowMs: 15 * 60_000 },
} as const satisfies Record<string, RateLimit>;

/**
 * Registration starts. Each one evaluates the server's OPRF (RFC 9807 §10.2: what offline guessing
 * needs), so they are metered like login starts. Since issue 8 a start evaluates under a fresh random
 * credential identifier and no longer reaches an existing account's OPRF key, so these limits are a
 * second line, not the fix: a flood guard per address, and a bound per email.
 */
export const REGISTRATION_RATE_LIMITS = {
  /** Starts from one address, whatever the email: the same flood guard as a login start's. */
  startsPerAddress: LOGIN_RATE_LIMITS.startsPerAddress,
  /** Starts for one email from everyone: as many as the account's own login guesses (a person needs one). */
  startsPerEmail: LOGIN_RATE_LIMITS.guessesPerAccount,
} as const satisfies Record<string, RateLimit>;

/**
 * The login limits a guess is counted in: a known device's own, or an unknown client's two. The
 * account's comes first: under an attack from many addresses it is the one that refuses, and a
 * refusal by the first limit counted costs one hit taken back instead of two.
 */
export function loginGuessLimits(
  knownDevice: boolean,
): ReadonlyArray<'guessesPerDevice' | 'guessesPerAccountAddress' | 'guessesPerAccount'> {
  return knownDevice ? ['guessesPerDevice'] : ['guessesPerAccount', 'guessesPerAccountAddress'];
}

/**
 * A device token lives 180 days and is replaced by a new one at each login that presents it, so a
 * device in use keeps one indefinitely while a lost or stolen token ends by itself.
 */
export const DEVICE_TOKEN_LIFETIME_MS = 180 * 24 * 3600 * 1000;
/**
 * Device tokens kept per account, newest first: a client that never keeps its token (a script) makes
 * one at each login, and the table must not grow with them.
 */
export const MAX_DEVICE_TOKENS_PER_ACCOUNT = 50;

/**
 * Characters no address we mail to may hold: controls (C0 and C1), format characters, lone surrogates,
 * private use, separators, and RFC 5322 §3.2.3's specials that only a quoted local part could carry
 * (`"(),:;<>[\]`). Mail libraries parse those as address-list syntax: `a@b.co,c` would mail `a@b.co`.
 */
const NOT_IN_AN_ADDRESS = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Z}"(),:;<>[\\\]]/u;

/**
 * Normalises an email for lookups: trimmed, lower-cased. Rejects what cannot be an address with
 * `LK_INVALID_EMAIL` (one `@`, a dotted domain, no spaces, controls or quoting specials).
 */
export function normalizeEmail(raw: string): string {
  const email = raw.trim().toLowerCase();
  if (NOT_IN_AN_ADDRESS.test(email) || email.length > 254 || !/^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/.test(email)) {
    throw new LatchkeyError('LK_INVALID_EMAIL');
  }
  return email;
}

/** Client-side password check; the server never sees the password, so it cannot check it. */
export function checkPassword(password: string): void {
  if ([...password].length < MIN_PASSWORD_LENGTH) throw new LatchkeyError('LK_PASSWORD_TOO_SHORT');
}

/** Turns 4 random bytes into an 8-digit code (bias below 2^-32 · 10^8, negligible). */
export function codeFromRandom(random: Uint8Array): string {
  if (random.length < 4) throw new RangeError('need 4 random bytes');
  const n = new DataView(random.buffer, random.byteOffset, 4).getUint32(0);
  return String(n % 100_000_000).padStart(8, '0');
}
