import type { CodeRow } from './schema.js';

/**
 * The names of the rate-limit buckets, in one place: the accounts service counts hits in them, and
 * deleting an account removes the ones named by its email. Names are compared exactly (never with
 * LIKE, where `_` in one email would match another's).
 */
export const rateLimitBucket = {
  loginByAddress: (address: string) => `login:addr:${address}`,
  loginByAccount: (email: string) => `login:acct:${email}`,
  codeSends: (purpose: CodeRow['purpose'], email: string) => `code:${purpose}:${email}`,
  codeSendsByAddress: (address: string) => `code:addr:${address}`,
} as const;

/** Every bucket named by an account's email, removed with the account. */
export function accountRateLimitBuckets(email: string): string[] {
  return [
    rateLimitBucket.loginByAccount(email),
    rateLimitBucket.codeSends('verify', email),
    rateLimitBucket.codeSends('reset', email),
  ];
}
