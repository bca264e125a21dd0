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

export type RecoveryKeyFailure = 'base58' | 'length' | 'prefix' | 'parity';

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
 * Any failure is `LK_BAD_RECOVERY_KEY` with `details.reason` naming the check that failed.
 */
export function decodeRecoveryKey(text: string): Uint8Array {
  const bytes = decodeBase58(text.replace(/\s+/g, ''));
  const fail = (reason: RecoveryKeyFailure): never => {
    throw new LatchkeyError('LK_BAD_RECOVERY_KEY', recoveryKeyMessage(reason), { reason });
  };
  if (bytes === undefined || bytes.length === 0) return fail('base58');
  if (bytes.length !== ENCODED_LENGTH) return fail('length');
  if (bytes[0] !== PREFIX[0] || bytes[1] !== PREFIX[1]) return fail('prefix');
  let parity = 0;
  for (const byte of bytes) parity ^= byte;
  if (parity !== 0) return fail('parity');
  return bytes.slice(PREFIX.length, PREFIX.length + KEY_LENGTH);
}

function recoveryKeyMessage(reason: RecoveryKeyFailure): string {
  switch (reason) {
    case 'base58':
      return 'The recovery key has a character that cannot be in one (0, O, I and l are never used).';
    case 'length':
      return 'The recovery key is too short or too long: it has 48 characters, shown in 12 groups of 4.';
    case 'prefix':
      return 'That is not a recovery key (it should start with Es).';
    case 'parity':
      return 'The recovery key has a typo: its check character does not match.';
  }
}
