import {
  argon2idParameters,
  checkKeyStretching,
  type ErrorCode,
  KEY_STRETCHING_CEILING,
  KEY_STRETCHING_FLOOR,
  type KeyStretchingConfig,
  parseKeyStretching,
} from '@latchkey/core';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from './vector-files.js';

/** accounts/key-stretching.ts: which advertised Argon2id settings a client takes. */

const custom = (memory: number, iterations: number, parallelism: number) =>
  ({ 'argon2id-custom': { memory, iterations, parallelism } }) as const;

const MiB = 1024;
const GiB = 1024 * MiB;

const ACCEPTED: [why: string, setting: KeyStretchingConfig][] = [
  ['the default preset (RFC 9106 §4, second option)', 'memory-constrained'],
  ['the costlier preset (RFC 9106 §4, first option)', 'rfc-recommended'],
  ['the floor spelled out', custom(64 * MiB, 3, 4)],
  ['the floor with one lane (lanes do not count)', custom(64 * MiB, 3, 1)],
  ['more memory buys fewer passes: 192 MiB × 1', custom(192 * MiB, 1, 4)],
  ['more passes over the floor memory', custom(64 * MiB, 8, 4)],
  ['the ceiling memory with two passes (the work ceiling)', custom(2 * GiB, 2, 4)],
  ['the most lanes', custom(64 * MiB, 3, 64)],
];

const REFUSED: [why: string, setting: unknown, code: ErrorCode][] = [
  ["the issue's attack: 8 KiB, one pass", custom(8, 1, 1), 'LK_KDF_TOO_WEAK'],
  ["the test servers' cheap setting", custom(MiB, 1, 1), 'LK_KDF_TOO_WEAK'],
  ['64 MiB, but fewer passes than the floor', custom(64 * MiB, 2, 4), 'LK_KDF_TOO_WEAK'],
  ['one KiB short of 64 MiB, even with many passes', custom(64 * MiB - 1, 100, 4), 'LK_KDF_TOO_WEAK'],
  ['just under the floor work: 191 MiB × 1', custom(191 * MiB, 1, 4), 'LK_KDF_TOO_WEAK'],
  ['one KiB over 2 GiB', custom(2 * GiB + 1, 1, 4), 'LK_KDF_TOO_COSTLY'],
  ['the most Argon2id allows: 4 TiB', custom(2 ** 32 - 1, 1, 4), 'LK_KDF_TOO_COSTLY'],
  ['2 GiB, three passes (over the work ceiling)', custom(2 * GiB, 3, 4), 'LK_KDF_TOO_COSTLY'],
  ['endless passes', custom(64 * MiB, 2 ** 32 - 1, 4), 'LK_KDF_TOO_COSTLY'],
  ['65 lanes', custom(64 * MiB, 3, 65), 'LK_KDF_TOO_COSTLY'],
  ['an unknown preset', 'rfc-draft-recommended', 'LK_KDF_INVALID'],
  ['scrypt', 'scrypt', 'LK_KDF_INVALID'],
  ['nothing', undefined, 'LK_KDF_INVALID'],
  ['null', null, 'LK_KDF_INVALID'],
  ['an empty object', {}, 'LK_KDF_INVALID'],
  ['a missing field', { 'argon2id-custom': { memory: 64 * MiB, iterations: 3 } }, 'LK_KDF_INVALID'],
  [
    'an extra field',
    { 'argon2id-custom': { ...custom(64 * MiB, 3, 4)['argon2id-custom'], salt: 1 } },
    'LK_KDF_INVALID',
  ],
  ['an extra top-level key', { ...custom(64 * MiB, 3, 4), argon2i: {} }, 'LK_KDF_INVALID'],
  ['a string number', { 'argon2id-custom': { memory: '65536', iterations: 3, parallelism: 4 } }, 'LK_KDF_INVALID'],
  ['a fraction', custom(65536.5, 3, 4), 'LK_KDF_INVALID'],
  ['NaN', custom(Number.NaN, 3, 4), 'LK_KDF_INVALID'],
  ['infinite memory', custom(Number.POSITIVE_INFINITY, 3, 4), 'LK_KDF_INVALID'],
  ['zero passes', custom(64 * MiB, 0, 4), 'LK_KDF_INVALID'],
  ['negative lanes', custom(64 * MiB, 3, -4), 'LK_KDF_INVALID'],
  ['less than 8 KiB per lane', custom(64, 3, 16), 'LK_KDF_INVALID'],
];

describe('checkKeyStretching without a pin: between the floor and the ceiling', () => {
  it.each(ACCEPTED)('accepts %s', (_why, setting) => {
    expect(checkKeyStretching(setting)).toEqual(setting);
  });

  it.each(REFUSED)('refuses %s', (_why, setting, code) => {
    expectLatchkeyError(() => checkKeyStretching(setting), code);
  });

  it('puts the floor at RFC 9106 second option and the ceiling at its first, doubled in work', () => {
    expect(KEY_STRETCHING_FLOOR).toEqual({ memory: 65_536, work: 65_536 * 3 });
    expect(KEY_STRETCHING_CEILING).toEqual({ memory: 2_097_152, work: 2 * 2_097_152, parallelism: 64 });
  });
});

describe('checkKeyStretching with a pin: exactly the app’s setting', () => {
  it('takes the pinned setting however the server spells it, weak or not (the app chose it)', () => {
    expect(checkKeyStretching(custom(MiB, 1, 1), custom(MiB, 1, 1))).toEqual(custom(MiB, 1, 1));
    expect(checkKeyStretching(custom(64 * MiB, 3, 4), 'memory-constrained')).toEqual(custom(64 * MiB, 3, 4));
    expect(checkKeyStretching('memory-constrained', custom(64 * MiB, 3, 4))).toBe('memory-constrained');
  });

  it('refuses any other setting with LK_KDF_MISMATCH, even a stronger one', () => {
    expectLatchkeyError(() => checkKeyStretching('memory-constrained', 'rfc-recommended'), 'LK_KDF_MISMATCH');
    expectLatchkeyError(() => checkKeyStretching('rfc-recommended', 'memory-constrained'), 'LK_KDF_MISMATCH');
    expectLatchkeyError(() => checkKeyStretching(custom(64 * MiB, 3, 2), 'memory-constrained'), 'LK_KDF_MISMATCH');
    expectLatchkeyError(() => checkKeyStretching(custom(MiB, 1, 1), 'memory-constrained'), 'LK_KDF_MISMATCH');
  });

  it('refuses a malformed advertisement before comparing, and a malformed pin', () => {
    expectLatchkeyError(() => checkKeyStretching('scrypt', 'memory-constrained'), 'LK_KDF_INVALID');
    const badPin = custom(0, 1, 1) as KeyStretchingConfig;
    expectLatchkeyError(() => checkKeyStretching('memory-constrained', badPin), 'LK_KDF_INVALID');
  });
});

describe('argon2idParameters', () => {
  it('spells out the presets as RFC 9106 §4 gives them', () => {
    expect(argon2idParameters('memory-constrained')).toEqual({ memory: 65_536, iterations: 3, parallelism: 4 });
    expect(argon2idParameters('rfc-recommended')).toEqual({ memory: 2_097_152, iterations: 1, parallelism: 4 });
  });
});

describe('parseKeyStretching', () => {
  it('reads the spellings of LATCHKEY_KEY_STRETCHING', () => {
    expect(parseKeyStretching('memory-constrained')).toBe('memory-constrained');
    expect(parseKeyStretching('rfc-recommended')).toBe('rfc-recommended');
    expect(parseKeyStretching('argon2id:m=1024,t=1,p=1')).toEqual(custom(1024, 1, 1));
  });

  it('reads the largest setting Argon2id itself allows', () => {
    expect(parseKeyStretching('argon2id:m=4294967295,t=4294967295,p=16777215')).toEqual(
      custom(4294967295, 4294967295, 16777215),
    );
  });

  it.each([
    '',
    'scrypt',
    'argon2id:m=1024,t=1',
    'argon2id:m=1024,t=0,p=1',
    'argon2id:m=7,t=1,p=1',
    'argon2id:m=0x400,t=1,p=1',
    ' argon2id:m=1024,t=1,p=1',
    // Argon2id's own upper bounds (RFC 9106 §3.1): 32-bit memory and passes, fewer than 2^24 lanes.
    'argon2id:m=4294967296,t=1,p=1',
    'argon2id:m=65536,t=4294967296,p=1',
    'argon2id:m=4294967295,t=1,p=16777216',
  ])('refuses %j with LK_KDF_INVALID', (text) => {
    expectLatchkeyError(() => parseKeyStretching(text), 'LK_KDF_INVALID');
  });
});
