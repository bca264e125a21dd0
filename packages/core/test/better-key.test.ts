import { type BackupKeyRank, isBetterBackupKey } from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BETTER_KEY_CASES } from './better-key-cases.js';

/** backup/better-key.ts: the spec's "better key" order, row by row, then as a whole. */

describe('isBetterBackupKey', () => {
  it.each(BETTER_KEY_CASES)('%s', (_why, candidate, existing, replaces) => {
    expect(isBetterBackupKey(candidate, existing)).toBe(replaces);
  });

  const anyRank = fc.record({
    is_verified: fc.boolean(),
    first_message_index: fc.nat({ max: 20 }),
    forwarded_count: fc.nat({ max: 5 }),
  });

  it('is the lexicographic order of (verified, -index, -forwards): a strict order, so one copy wins', () => {
    const key = (r: BackupKeyRank) => [r.is_verified ? 0 : 1, r.first_message_index, r.forwarded_count];
    const lexLess = (a: number[], b: number[]) => {
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return (a[i] as number) < (b[i] as number);
      return false;
    };
    fc.assert(
      fc.property(anyRank, anyRank, (a, b) => {
        expect(isBetterBackupKey(a, b)).toBe(lexLess(key(a), key(b)));
        // Never both ways: the order of arrival cannot make two copies replace each other forever.
        expect(isBetterBackupKey(a, b) && isBetterBackupKey(b, a)).toBe(false);
      }),
    );
  });
});
