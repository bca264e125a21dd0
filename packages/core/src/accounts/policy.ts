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
/** Wrong guesses a code survives before it is burnt. */
export const CODE_MAX_ATTEMPTS = 5;

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
