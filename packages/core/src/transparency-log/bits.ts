import { LatchkeyError } from '../errors.js';

/**
 * Bit arithmetic on tree sizes and indexes. JavaScript's bitwise operators work on 32 bits only, and a
 * log may outgrow 2^32 leaves, so these split a number into two 32-bit halves instead. Every size and
 * index is a safe integer (below 2^53): a bigger log is not something one server could ever hold.
 */

const TWO_32 = 2 ** 32;

/** Throws `LK_LOG_RANGE_INVALID` unless `value` is a whole number in [0, 2^53). */
export function requireTreeNumber(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new LatchkeyError('LK_LOG_RANGE_INVALID', `${what} must be a whole number below 2^53, not ${value}.`);
  }
}

function high(x: number): number {
  return Math.floor(x / TWO_32);
}

function low(x: number): number {
  return x % TWO_32;
}

/** The number of bits needed to write `x` (0 for 0), like Go's bits.Len64. */
export function bitLength(x: number): number {
  const h = high(x);
  return h > 0 ? 64 - Math.clz32(h) : 32 - Math.clz32(low(x));
}

/** The number of set bits in `x`. */
export function popCount(x: number): number {
  let count = 0;
  for (let part of [high(x), low(x)]) {
    for (; part > 0; part >>>= 1) count += part & 1;
  }
  return count;
}

/** The number of zero bits below the lowest set bit (64 for 0). */
export function trailingZeros(x: number): number {
  if (x === 0) return 64;
  const l = low(x);
  if (l !== 0) return 31 - Math.clz32(l & -l);
  const h = high(x);
  return 32 + 31 - Math.clz32(h & -h);
}

export function xor(a: number, b: number): number {
  return ((high(a) ^ high(b)) >>> 0) * TWO_32 + ((low(a) ^ low(b)) >>> 0);
}

export function shiftRight(x: number, bits: number): number {
  return Math.floor(x / 2 ** bits);
}

export function isOdd(x: number): boolean {
  return x % 2 === 1;
}

/** The largest power of two strictly below `n` (n > 1): RFC 6962's split point k. */
export function largestPowerOfTwoBelow(n: number): number {
  return 2 ** (bitLength(n - 1) - 1);
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && popCount(n) === 1;
}
