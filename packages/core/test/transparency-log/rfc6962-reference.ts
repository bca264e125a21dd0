import { createHash } from 'node:crypto';

/**
 * RFC 9162 §2.1 written out literally over lists of entries, with node:crypto's SHA-256: a second,
 * independent implementation for the tests to compare core's proofs against, byte for byte. D[a:b] is
 * a view (entries, a, b) rather than a copy, and MTH remembers what it hashed, so that checking every
 * proof of every tree up to 130 leaves takes seconds; the recursion is the RFC's, line for line.
 */

function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** k: the largest power of two smaller than n (n > 1). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** D[a:b] of the RFC: a range of a list of entries. */
class Range {
  constructor(
    readonly entries: readonly Uint8Array[],
    readonly a: number,
    readonly b: number,
  ) {}
  get n(): number {
    return this.b - this.a;
  }
  /** D[from:to], counted within this range. */
  slice(from: number, to = this.n): Range {
    return new Range(this.entries, this.a + from, this.a + to);
  }
}

const remembered = new WeakMap<readonly Uint8Array[], Map<string, Uint8Array>>();

function mthOf(d: Range): Uint8Array {
  const memo = remembered.get(d.entries) ?? new Map<string, Uint8Array>();
  remembered.set(d.entries, memo);
  const key = `${d.a}:${d.b}`;
  let hash = memo.get(key);
  if (hash === undefined) {
    hash = literalMth(d);
    memo.set(key, hash);
  }
  return hash;
}

function literalMth(d: Range): Uint8Array {
  if (d.n === 0) return sha256();
  if (d.n === 1) return sha256(Uint8Array.of(0), d.entries[d.a] as Uint8Array);
  const k = splitPoint(d.n);
  return sha256(Uint8Array.of(1), mthOf(d.slice(0, k)), mthOf(d.slice(k)));
}

/** MTH(D_n). */
export function mth(d: readonly Uint8Array[]): Uint8Array {
  return mthOf(new Range(d, 0, d.length));
}

/** PATH(m, D_n). */
export function referencePath(m: number, d: readonly Uint8Array[]): Uint8Array[] {
  return path(m, new Range(d, 0, d.length));
}

function path(m: number, d: Range): Uint8Array[] {
  if (d.n === 1) return [];
  const k = splitPoint(d.n);
  if (m < k) return [...path(m, d.slice(0, k)), mthOf(d.slice(k))];
  return [...path(m - k, d.slice(k)), mthOf(d.slice(0, k))];
}

/** PROOF(m, D_n) = SUBPROOF(m, D_n, true). */
export function referenceProof(m: number, d: readonly Uint8Array[]): Uint8Array[] {
  return subproof(m, new Range(d, 0, d.length), true);
}

function subproof(m: number, d: Range, b: boolean): Uint8Array[] {
  if (m === d.n) return b ? [] : [mthOf(d)];
  const k = splitPoint(d.n);
  if (m <= k) return [...subproof(m, d.slice(0, k), b), mthOf(d.slice(k))];
  return [...subproof(m - k, d.slice(k), false), mthOf(d.slice(0, k))];
}

/** Deterministic entries for tests: entry i is the UTF-8 of "entry <i>" (distinct, of varied length). */
export function sampleEntries(count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => new TextEncoder().encode(`entry ${i}${'.'.repeat(i % 7)}`));
}
