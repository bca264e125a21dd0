import { checkPassword, codeFromRandom, MIN_PASSWORD_LENGTH, normalizeEmail } from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from './vector-files.js';

/** accounts/policy.ts: what an email, a password and a one-time code may be. */

const local64 = 'a'.repeat(64);
const domainOf = (length: number) => `${'d'.repeat(length - 4)}.com`;

const ACCEPTED: [input: string, normalized: string][] = [
  ['alice@example.com', 'alice@example.com'],
  ['  Alice@Example.COM\t', 'alice@example.com'],
  ['first.last+tag@sub.example.org', 'first.last+tag@sub.example.org'],
  ["o'brien_x-y@example.co.uk", "o'brien_x-y@example.co.uk"],
  ['JOSÉ@EXÄMPLE.DE', 'josé@exämple.de'],
  [`${local64}@example.com`, `${local64}@example.com`],
  // 254 characters in all, the RFC 5321 §4.5.3.1.3 path limit less the angle brackets.
  [`a@${domainOf(252)}`, `a@${domainOf(252)}`],
];

const REJECTED: [why: string, input: string][] = [
  ['empty', ''],
  ['blank', '   '],
  ['no @', 'alice.example.com'],
  ['nothing before @', '@example.com'],
  ['nothing after @', 'alice@'],
  ['undotted domain', 'alice@localhost'],
  ['domain starting with a dot', 'alice@.com'],
  ['domain ending with a dot', 'alice@example.'],
  ['two @', 'alice@bob@example.com'],
  ['space inside', 'ali ce@example.com'],
  ['no-break space inside', 'ali\u00a0ce@example.com'],
  ['header injection through a newline', 'alice@example.com\nBcc: eve@example.com'],
  ['carriage return inside', 'alice@exa\rmple.com'],
  ['NUL inside', 'alice\u0000@example.com'],
  ['C1 control inside', 'alice\u0085@example.com'],
  ['zero-width space inside', 'ali\u200bce@example.com'],
  ['right-to-left override inside', 'alice\u202e@example.com'],
  ['lone surrogate', 'alice\ud800@example.com'],
  ['private-use character', 'alice\ue000@example.com'],
  ['address list via a comma', 'alice@example.com,eve@example.com'],
  ['address list via a semicolon', 'alice@example.com;eve@example.com'],
  ['angle-bracket form', 'Alice <alice@example.com>'],
  ['quoted local part', '"alice"@example.com'],
  ['parenthesised comment', 'alice(comment)@example.com'],
  ['colon (group syntax)', 'group:alice@example.com'],
  ['domain literal brackets', 'alice@[127.0.0.1]'],
  ['backslash', 'ali\\ce@example.com'],
  ['local part of 65 characters', `${'a'.repeat(65)}@example.com`],
  ['255 characters in all', `a@${domainOf(253)}`],
];

describe('normalizeEmail', () => {
  it.each(ACCEPTED)('accepts %j as %j', (input, normalized) => {
    expect(normalizeEmail(input)).toBe(normalized);
  });

  it.each(REJECTED)('rejects %s', (_why, input) => {
    expectLatchkeyError(() => normalizeEmail(input), 'LK_INVALID_EMAIL');
  });

  it('is idempotent on what it accepts', () => {
    fc.assert(
      fc.property(fc.emailAddress(), (email) => {
        const once = normalizeEmail(email);
        expect(normalizeEmail(once)).toBe(once);
      }),
    );
  });
});

describe('checkPassword', () => {
  it('needs 8 characters, counted as code points', () => {
    expect(MIN_PASSWORD_LENGTH).toBe(8);
    expect(() => checkPassword('12345678')).not.toThrow();
    expect(() => checkPassword('correct horse battery staple')).not.toThrow();
    // Eight astral characters are 16 UTF-16 units but 8 characters: long enough.
    expect(() => checkPassword('🔑'.repeat(8))).not.toThrow();
    expectLatchkeyError(() => checkPassword(''), 'LK_PASSWORD_TOO_SHORT');
    expectLatchkeyError(() => checkPassword('1234567'), 'LK_PASSWORD_TOO_SHORT');
    // Four astral characters are 8 UTF-16 units but only 4 characters: too short.
    expectLatchkeyError(() => checkPassword('🔑'.repeat(4)), 'LK_PASSWORD_TOO_SHORT');
  });
});

describe('codeFromRandom', () => {
  const word = (n: number) => {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, n);
    return bytes;
  };

  it.each([
    [0, '00000000'],
    [1, '00000001'],
    [99_999_999, '99999999'],
    [100_000_000, '00000000'],
    [0xffffffff, '94967295'],
  ])('turns %i into %s', (n, code) => {
    expect(codeFromRandom(word(n))).toBe(code);
  });

  it('reads the first 4 bytes big-endian, also from a view into a larger buffer', () => {
    const buffer = Uint8Array.of(0xaa, 0x00, 0x00, 0x00, 0x2a, 0xbb);
    expect(codeFromRandom(buffer.subarray(1, 5))).toBe('00000042');
    expect(codeFromRandom(buffer.subarray(1))).toBe('00000042');
  });

  it('refuses fewer than 4 bytes', () => {
    expect(() => codeFromRandom(new Uint8Array(3))).toThrow(RangeError);
  });

  it('always gives 8 decimal digits', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 8 }), (random) => {
        expect(codeFromRandom(random)).toMatch(/^\d{8}$/);
      }),
    );
  });
});
