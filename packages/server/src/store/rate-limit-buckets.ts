import { isIPv4, isIPv6 } from 'node:net';
import type { CodeRow } from './schema.js';

/**
 * The names of the rate-limit buckets, in one place: the accounts service counts hits in them, and
 * deleting an account removes the ones named by its email. Names are compared exactly (never with
 * LIKE, where `_` in one email would match another's). Per-address buckets go through
 * {@link addressBucketKey}, so every spelling of one client's address lands in one bucket.
 */
export const rateLimitBucket = {
  /** Login starts from one address, whatever the email (a flood guard). */
  loginByAddress: (address: string) => `login:addr:${addressBucketKey(address)}`,
  /** Unproven guesses at one email from unknown clients. */
  loginByAccount: (email: string) => `login:acct:${email}`,
  /**
   * Unproven guesses at one email from one address. An email holds no `:` (normalizeEmail refuses
   * it), so the name splits one way only. Not removed with the account: it ends with its window.
   */
  loginByAccountAddress: (email: string, address: string) => `login:acct-addr:${email}:${addressBucketKey(address)}`,
  /** Unproven guesses with one device token (named by the token's row id, never by the token). */
  loginByDevice: (deviceTokenId: string) => `login:device:${deviceTokenId}`,
  /** Unproven reauthentications of one session. */
  reauthBySession: (sessionId: string) => `reauth:session:${sessionId}`,
  /** Registration starts from one address, whatever the email (a flood guard). */
  registerByAddress: (address: string) => `register:addr:${addressBucketKey(address)}`,
  /**
   * Registration starts for one email. Not removed with an account: a start names no account, and
   * deleting one must not reset the count.
   */
  registerByEmail: (email: string) => `register:email:${email}`,
  codeSends: (purpose: CodeRow['purpose'], email: string) => `code:${purpose}:${email}`,
  codeSendsByAddress: (address: string) => `code:addr:${addressBucketKey(address)}`,
} as const;

/** Every bucket named by an account's email, removed with the account. */
export function accountRateLimitBuckets(email: string): string[] {
  return [
    rateLimitBucket.loginByAccount(email),
    rateLimitBucket.codeSends('verify', email),
    rateLimitBucket.codeSends('reset', email),
  ];
}

/**
 * What names one client in a per-address bucket. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what
 * a dual-stack socket reports for an IPv4 peer; RFC 4291 §2.5.5.2) is the IPv4 address it carries, so
 * one client does not get two buckets. Any other IPv6 address counts as its /64 prefix, written
 * `2001:db8:0:1::/64`: a single subscriber is handed at least a /64 (RFC 6177 §2), and would otherwise
 * get a fresh bucket from each of its 2^64 addresses. Anything else (not an IP address) is kept as given.
 */
export function addressBucketKey(address: string): string {
  if (isIPv4(address)) return address;
  // A zone (`fe80::1%eth0`) names the local interface, not the peer.
  const zoneless = address.split('%', 1)[0] as string;
  if (!isIPv6(zoneless)) return address;
  const groups = ipv6Groups(zoneless);
  const at = (i: number) => groups[i] as number;
  if (groups.slice(0, 5).every((group) => group === 0) && at(5) === 0xffff) {
    return [at(6) >> 8, at(6) & 0xff, at(7) >> 8, at(7) & 0xff].join('.');
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (RFC 4291 §2.2: `::` and a dotted IPv4 tail expanded). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const tailStart = text.lastIndexOf(':') + 1;
  const tail = text.slice(tailStart);
  if (tail.includes('.')) {
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, tailStart)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const [head, rest] = text.split('::') as [string, string | undefined];
  if (rest === undefined) return parse(head);
  const left = parse(head);
  const right = parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
