import { LatchkeyError } from '../errors.js';
import { decodeBase58, encodeBase58 } from './base58.js';

/**
 * The Matrix recovery key (spec appendices, "Cryptographic key representation"):
 * base58(0x8B ‖ 0x01 ‖ key[32] ‖ parity), parity = XOR of the 34 bytes before it, shown in groups of 4.
 * The same form carries the secret-storage key and the legacy backup key.
 */
const PREFIX = [0x8b, 0x01] as const;
const KEY_LENGTH = 32;
const ENCODED_LENGTH = PREFIX.length + KEY_LENGTH + 1;

/** The length of every recovery key without its spaces: base58 of 35 bytes that start 0x8B 0x01. */
const TEXT_LENGTH = 48;

/**
 * Which check a recovery key failed, as `details.reason` carries it: `empty` (nothing but spaces),
 * `case` (its letters' case was changed: base58 is case-sensitive), `base58` (a character outside
 * the alphabet), `length`, `prefix` (not a recovery key), `parity` (a typo).
 */
export type RecoveryKeyFailure = 'empty' | 'case' | 'base58' | 'length' | 'prefix' | 'parity';

/** Encodes a 32-byte key as the display form `EsTc LW2K …` (59 characters, 12 groups of 4). */
export function encodeRecoveryKey(key: Uint8Array): string {
  if (key.length !== KEY_LENGTH) throw new RangeError('a recovery key encodes exactly 32 bytes');
  const bytes = new Uint8Array(ENCODED_LENGTH);
  bytes.set(PREFIX, 0);
  bytes.set(key, PREFIX.length);
  let parity = 0;
  for (let i = 0; i < ENCODED_LENGTH - 1; i++) parity ^= bytes[i] as number;
  bytes[ENCODED_LENGTH - 1] = parity;
  return (encodeBase58(bytes).match(/.{1,4}/g) ?? []).join(' ');
}

/**
 * Decodes a recovery key typed or pasted by a person: all whitespace is ignored (Rust strips every
 * `char::is_whitespace`), then the decoding must be exactly 35 bytes with the prefix and zero parity.
 * Any failure is `LK_BAD_RECOVERY_KEY` with `details.reason` naming the check that failed and a
 * message saying what to fix.
 */
export function decodeRecoveryKey(text: string): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  const fail = (reason: RecoveryKeyFailure, message: string): never => {
    throw new LatchkeyError('LK_BAD_RECOVERY_KEY', message, { reason });
  };
  if (compact === '') return fail('empty', EMPTY);
  // Every key starts "Es"; "es" or "ES" means the case was changed (a caps-lock, a lowercasing
  // editor), which breaks any later check, so it is named before the check it happens to break.
  const caseChanged = compact.length > 1 && compact.slice(0, 2) !== 'Es' && compact.slice(0, 2).toLowerCase() === 'es';
  if (caseChanged) return fail('case', caseMessage(compact.slice(0, 2)));
  const bytes = decodeBase58(compact);
  if (bytes === undefined) return fail('base58', base58Message(compact));
  if (compact.length !== TEXT_LENGTH || bytes.length !== ENCODED_LENGTH) return fail('length', lengthMessage(compact));
  if (bytes[0] !== PREFIX[0] || bytes[1] !== PREFIX[1]) return fail('prefix', PREFIX_MESSAGE);
  let parity = 0;
  for (const byte of bytes) parity ^= byte;
  if (parity !== 0) return fail('parity', PARITY_MESSAGE);
  return bytes.slice(PREFIX.length, PREFIX.length + KEY_LENGTH);
}

const FORM = `${TEXT_LENGTH} characters, shown in 12 groups of 4, starting with Es`;
const EMPTY = `No recovery key was given: a recovery key is ${FORM}.`;
const PREFIX_MESSAGE = 'That is not a recovery key: a recovery key starts with Es.';
const PARITY_MESSAGE =
  'The recovery key has a typo: its check character does not match. A character is wrong (capitals ' +
  'matter: the key is case-sensitive) or two are swapped.';

function caseMessage(start: string): string {
  return (
    `The recovery key is case-sensitive: type its capitals and small letters as shown (it starts with ` +
    `"Es", not "${start}").`
  );
}

/**
 * Names the first character outside the base58 alphabet and where it is. Such a character is in no
 * recovery key, so naming it tells nothing about the key.
 */
function base58Message(compact: string): string {
  const index = [...compact].findIndex((char) => decodeBase58(char) === undefined);
  const char = [...compact][index] ?? '';
  const never = '0 (zero), O (capital o), I (capital i) and l (small L) are never used';
  return `The recovery key has a character that cannot be in one: ${JSON.stringify(char)}, the ${ordinal(index + 1)} (not counting spaces). ${never}.`;
}

function lengthMessage(compact: string): string {
  const count = [...compact].length;
  if (count === TEXT_LENGTH) return `That is not a recovery key: a recovery key is ${FORM}.`;
  const what = count < TEXT_LENGTH ? 'some are missing' : 'there are extra ones';
  return `The recovery key has ${count} characters (not counting spaces), not ${TEXT_LENGTH}: ${what}. It is shown in 12 groups of 4.`;
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}
