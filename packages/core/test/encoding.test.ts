import { fromBase64, fromBase64Url, fromHex, LatchkeyError, toBase64, toBase64Url, toHex } from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type EncodingVector, isCanonical } from '../vectors/generate.js';
import { expectLatchkeyError, loadVectors, mustFailCases, validCases } from './vector-files.js';

/** The strict encodings against encoding.json, and hostile strings as a table and as properties (conventions §6). */

const file = loadVectors<EncodingVector>('encoding.json');
const valid = validCases(file.vectors);
const mustFail = mustFailCases(file.vectors);
const decoders = { fromBase64Url, fromBase64 } as const;

/** Characters near the base64 alphabets, so random strings often come close to valid. */
const NEAR_BASE64 = [
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_',
  '=',
  ' ',
  '\n',
  'é',
  '\ud800',
];
const nearBase64String = fc.string({ unit: fc.constantFrom(...NEAR_BASE64), maxLength: 24 });
const arbitraryString = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), nearBase64String);

/** Runs a decoder and reports its bytes, or rethrows anything that is not LK_BAD_BASE64. */
function decodeOrRefuse(decode: (text: string) => Uint8Array, text: string): Uint8Array | 'refused' {
  try {
    return decode(text);
  } catch (error) {
    if (error instanceof LatchkeyError && error.code === 'LK_BAD_BASE64') return 'refused';
    throw error;
  }
}

describe('encoding.json', () => {
  it('holds must-fail cases for both decoders', () => {
    expect(new Set(mustFail.map((v) => v.decoder))).toEqual(new Set(['fromBase64Url', 'fromBase64']));
  });

  it.each(valid)('encodes and decodes: $name', (v) => {
    const bytes = fromHex(v.hex);
    expect(toHex(bytes)).toBe(v.hex);
    expect(toBase64Url(bytes)).toBe(v.base64url);
    expect(toBase64(bytes)).toBe(v.base64);
    expect(toBase64(bytes, true)).toBe(v.base64Padded);
    expect(toHex(fromBase64Url(v.base64url))).toBe(v.hex);
    expect(toHex(fromBase64(v.base64))).toBe(v.hex);
    expect(toHex(fromBase64(v.base64Padded))).toBe(v.hex);
  });

  it.each(mustFail)('$name', (v) => {
    expectLatchkeyError(() => decoders[v.decoder](v.input), v.error);
  });
});

describe('hex', () => {
  it('refuses odd lengths and non-hex characters', () => {
    for (const bad of ['0', 'abc', 'zz', '0x00', ' 00', '00 ', 'é0']) expect(() => fromHex(bad)).toThrow(TypeError);
  });
});

describe('round trips', () => {
  it('base64url', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
      }),
    );
  });

  it('standard base64, padded and unpadded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(fromBase64(toBase64(bytes))).toEqual(bytes);
        expect(fromBase64(toBase64(bytes, true))).toEqual(bytes);
        expect(toBase64(bytes, true).length % 4).toBe(0);
      }),
    );
  });

  it('hex, lower case out and either case in', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const text = toHex(bytes);
        expect(text).toMatch(/^[0-9a-f]*$/);
        expect(fromHex(text)).toEqual(bytes);
        expect(fromHex(text.toUpperCase())).toEqual(bytes);
      }),
    );
  });
});

describe('decoders on arbitrary strings', () => {
  for (const [name, decode] of Object.entries(decoders)) {
    it(`${name} returns bytes or throws LK_BAD_BASE64, nothing else`, () => {
      fc.assert(fc.property(arbitraryString, (text) => void decodeOrRefuse(decode, text)));
    });

    it(`${name} accepts exactly the canonical strings of the Buffer model, with the same bytes`, () => {
      const decoder = name as keyof typeof decoders;
      fc.assert(
        fc.property(arbitraryString, (text) => {
          const result = decodeOrRefuse(decode, text);
          const encoding = decoder === 'fromBase64Url' ? 'base64url' : 'base64';
          const expected = isCanonical(decoder, text) ? new Uint8Array(Buffer.from(text, encoding)) : 'refused';
          expect(result).toEqual(expected);
        }),
        { numRuns: 1000 },
      );
    });
  }
});
