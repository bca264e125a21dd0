import {
  CanonicalJsonError,
  canonicalizeJson,
  decodeCanonicalJson,
  encodeCanonicalJson,
  fromHex,
  toHex,
  utf8,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadVectors } from '../vector-files.js';

/** RFC 8785 (JCS) against its author's test data, and the strict decoder against non-canonical spellings. */

interface JcsVector {
  name: string;
  input: string;
  output: string;
  outputHex: string;
}
interface JcsFile {
  source: string;
  vectors: JcsVector[];
  numbers: { ieeeHex: string; expected: string }[];
}

const file = loadVectors<JcsVector>('jcs-rfc8785.json') as unknown as JcsFile;

/** The double whose IEEE-754 bits are `hex` (1 to 16 hex digits, big-endian). */
function doubleFromBits(hex: string): number {
  return new DataView(fromHex(hex.padStart(16, '0')).buffer).getFloat64(0);
}

describe('jcs-rfc8785.json (cyberphone/json-canonicalization testdata)', () => {
  it('names its source and holds the six files', () => {
    expect(file.source).toMatch(/cyberphone\/json-canonicalization @ [0-9a-f]{40}/);
    expect(file.vectors.map((v) => v.name)).toEqual(['arrays', 'french', 'structures', 'unicode', 'values', 'weird']);
  });

  it.each(file.vectors)('$name canonicalizes byte for byte', (v) => {
    const bytes = encodeCanonicalJson(JSON.parse(v.input));
    expect(toHex(bytes)).toBe(v.outputHex);
    expect(new TextDecoder().decode(bytes)).toBe(v.output);
  });

  it.each(file.vectors)('$name: the output decodes as canonical, the input (not canonical) is refused', (v) => {
    expect(decodeCanonicalJson(fromHex(v.outputHex))).toEqual(JSON.parse(v.output));
    expect(() => decodeCanonicalJson(utf8(v.input))).toThrow(CanonicalJsonError);
  });

  it.each(file.numbers)('the double $ieeeHex serializes as $expected', ({ ieeeHex, expected }) => {
    expect(canonicalizeJson(doubleFromBits(ieeeHex))).toBe(expected);
  });
});

describe('the canonical encoder', () => {
  it('refuses what is not JSON, and lone surrogates (RFC 8785 §3.2.2.2)', () => {
    for (const bad of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      undefined,
      1n,
      () => 1,
      new Date(0),
      '\ud800',
      'a\udc00',
    ]) {
      expect(() => canonicalizeJson(bad)).toThrow(CanonicalJsonError);
    }
    expect(() => canonicalizeJson({ ['\udead']: 1 })).toThrow(CanonicalJsonError);
    expect(canonicalizeJson('\ud83d\ude02')).toBe('"\ud83d\ude02"');
  });

  it('round-trips any JSON value through its one encoding', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const bytes = encodeCanonicalJson(value);
        const decoded = decodeCanonicalJson(bytes);
        expect(encodeCanonicalJson(decoded)).toEqual(bytes);
      }),
    );
  });
});

describe('the strict decoder refuses every other spelling', () => {
  const refused: [string, Uint8Array][] = [
    ['members out of order', utf8('{"b":1,"a":2}')],
    ['whitespace between tokens', utf8('{"a": 1}')],
    ['a trailing newline', utf8('{"a":1}\n')],
    ['an escaped letter', utf8('{"a":"\\u0061"}')],
    ['an escaped solidus', utf8('["\\/"]')],
    ['an upper-case escape', utf8('["\\u001F"]')],
    ['a float spelling of an integer', utf8('[1.0]')],
    ['an exponent', utf8('[1e2]')],
    ['negative zero', utf8('[-0]')],
    ['a duplicate member name', utf8('{"a":1,"a":1}')],
    ['a byte order mark', fromHex('efbbbf7b7d')],
    ['invalid UTF-8', fromHex('5b22ff225d')],
    ['an escaped lone surrogate', utf8('["\\ud800"]')],
    ['not JSON', utf8('{')],
  ];
  it.each(refused)('%s', (_name, bytes) => {
    expect(() => decodeCanonicalJson(bytes)).toThrow(CanonicalJsonError);
  });
});
