import { describe, expect, it } from 'vitest';
import { addressBucketKey, rateLimitBucket } from '../src/store/rate-limit-buckets.js';

/** [address as the socket or X-Forwarded-For gives it, the key its per-address buckets use, why]. */
const CASES: [string, string, string][] = [
  ['192.0.2.1', '192.0.2.1', 'IPv4 as it is'],
  ['127.0.0.1', '127.0.0.1', 'loopback IPv4'],
  ['::ffff:192.0.2.1', '192.0.2.1', 'IPv4-mapped, as a dual-stack socket reports an IPv4 peer'],
  ['::FFFF:192.0.2.1', '192.0.2.1', 'IPv4-mapped in capitals'],
  ['::ffff:c000:201', '192.0.2.1', 'IPv4-mapped written in hex'],
  ['0:0:0:0:0:ffff:192.0.2.1', '192.0.2.1', 'IPv4-mapped written out in full'],
  ['::ffff:0.0.0.0', '0.0.0.0', 'IPv4-mapped, the zero address'],
  ['2001:db8:0:1::', '2001:db8:0:1::/64', 'IPv6: its /64 prefix'],
  ['2001:db8:0:1::1', '2001:db8:0:1::/64', 'another address in the same /64'],
  ['2001:db8:0:1:ffff:ffff:ffff:ffff', '2001:db8:0:1::/64', 'the last address in that /64'],
  ['2001:0DB8:0000:0001:0000:0000:0000:0002', '2001:db8:0:1::/64', 'full form, leading zeros, capitals'],
  ['2001:db8:0:2::1', '2001:db8:0:2::/64', 'the next /64 is another bucket'],
  ['2001:db8::1', '2001:db8:0:0::/64', ':: standing for groups inside the prefix'],
  ['2001:db8::1:0:0:1', '2001:db8:0:0::/64', ':: standing for two groups only'],
  ['2001:db8:1:2:3::', '2001:db8:1:2::/64', ':: at the end'],
  ['::1', '0:0:0:0::/64', 'IPv6 loopback'],
  ['::', '0:0:0:0::/64', 'the unspecified address'],
  ['::192.0.2.1', '0:0:0:0::/64', 'IPv4-compatible (deprecated) is not IPv4-mapped'],
  ['::ffff:1:c000:201', '0:0:0:0::/64', 'ffff in the wrong group is not IPv4-mapped'],
  ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64', 'a dotted tail after another prefix (NAT64)'],
  ['fe80::1%eth0', 'fe80:0:0:0::/64', 'a zone names the local interface, not the peer'],
  ['not an address', 'not an address', 'anything else as given'],
  ['', '', 'empty as given'],
];

describe('addressBucketKey', () => {
  it.each(CASES)('%s → %s (%s)', (address, key) => {
    expect(addressBucketKey(address)).toBe(key);
  });

  it('names the bucket of every per-address limit', () => {
    expect(rateLimitBucket.loginByAddress('::ffff:192.0.2.1')).toBe('login:addr:192.0.2.1');
    expect(rateLimitBucket.codeSendsByAddress('2001:db8:0:1::7')).toBe('code:addr:2001:db8:0:1::/64');
    expect(rateLimitBucket.codeSendsByAddress('2001:db8:0:1::8')).toBe(
      rateLimitBucket.codeSendsByAddress('2001:db8:0:1::7'),
    );
  });
});
