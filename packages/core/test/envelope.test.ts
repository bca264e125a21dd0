import {
  type Aead,
  defaultAead,
  ENVELOPE_OVERHEAD,
  ENVELOPE_V1,
  fromHex,
  isWellFormedEnvelope,
  nobleAead,
  nodeAead,
  openEnvelope,
  sealEnvelope,
  toHex,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type EnvelopeVector, sealWithNodeCrypto } from '../vectors/generate.js';
import { expectLatchkeyError, loadVectors, mustFailCases, validCases } from './vector-files.js';

/** The versioned AEAD envelope against envelope.json (computed with node:crypto, not with core). */

const file = loadVectors<EnvelopeVector>('envelope.json');
const valid = validCases(file.vectors);
const mustFail = mustFailCases(file.vectors);

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const nonce12 = fc.uint8Array({ minLength: 12, maxLength: 12 });
const anyBytes = fc.uint8Array({ maxLength: 100 });

describe('envelope.json', () => {
  it('holds valid and must-fail cases with both error codes', () => {
    expect(valid.length).toBeGreaterThan(0);
    expect(new Set(mustFail.map((v) => v.error))).toEqual(new Set(['LK_WRAPPED_KEY_INVALID', 'LK_KEY_UNWRAP_FAILED']));
  });

  it.each(valid)('seals and opens: $name', (v) => {
    const key = fromHex(v.keyHex);
    const aad = fromHex(v.aadHex);
    const envelope = sealEnvelope(key, fromHex(v.plaintextHex), aad, fromHex(v.nonceHex));
    expect(toHex(envelope)).toBe(v.envelopeHex);
    expect(isWellFormedEnvelope(envelope, v.plaintextHex.length / 2)).toBe(true);
    expect(toHex(openEnvelope(key, fromHex(v.envelopeHex), aad))).toBe(v.plaintextHex);
  });

  // Node runs node:crypto by default; the browser runs noble. Both must give the vectors' bytes.
  const providers: Array<[string, Aead | undefined]> = [
    ['noble', nobleAead],
    ['node:crypto', nodeAead],
  ];
  it.each(providers)('the %s AEAD gives the same envelopes and opens them', (_name, aead) => {
    if (aead === undefined) throw new Error('node:crypto must be found in Node');
    for (const v of valid) {
      const key = fromHex(v.keyHex);
      const aad = fromHex(v.aadHex);
      expect(toHex(sealEnvelope(key, fromHex(v.plaintextHex), aad, fromHex(v.nonceHex), aead))).toBe(v.envelopeHex);
      expect(toHex(openEnvelope(key, fromHex(v.envelopeHex), aad, aead))).toBe(v.plaintextHex);
    }
    expect(defaultAead).toBe(nodeAead);
  });

  it.each(mustFail)('$name → $error', (v) => {
    const envelope = fromHex(v.envelopeHex);
    expectLatchkeyError(() => openEnvelope(fromHex(v.keyHex), envelope, fromHex(v.aadHex)), v.error);
    // The server's keyless check must agree with the opener on what is malformed.
    expect(isWellFormedEnvelope(envelope)).toBe(v.error !== 'LK_WRAPPED_KEY_INVALID');
  });
});

describe('envelope arguments', () => {
  it('refuses keys and nonces of the wrong length before sealing', () => {
    const plaintext = new Uint8Array(4);
    for (const length of [0, 16, 31, 33]) {
      expect(() => sealEnvelope(new Uint8Array(length), plaintext, plaintext, new Uint8Array(12))).toThrow(RangeError);
    }
    for (const length of [0, 11, 13, 16]) {
      expect(() => sealEnvelope(new Uint8Array(32), plaintext, plaintext, new Uint8Array(length))).toThrow(RangeError);
    }
  });

  it('checks an expected plaintext length without the key', () => {
    const envelope = sealEnvelope(new Uint8Array(32), new Uint8Array(32), new Uint8Array(0), new Uint8Array(12));
    expect(isWellFormedEnvelope(envelope, 32)).toBe(true);
    expect(isWellFormedEnvelope(envelope, 31)).toBe(false);
    expect(isWellFormedEnvelope(envelope, 33)).toBe(false);
  });
});

describe('envelope properties', () => {
  it('openEnvelope inverts sealEnvelope, and the bytes equal the node:crypto model', () => {
    fc.assert(
      fc.property(key32, anyBytes, anyBytes, nonce12, (key, plaintext, aad, nonce) => {
        const envelope = sealEnvelope(key, plaintext, aad, nonce);
        expect(envelope.length).toBe(ENVELOPE_OVERHEAD + plaintext.length);
        expect(envelope[0]).toBe(ENVELOPE_V1);
        const model = sealWithNodeCrypto(
          Buffer.from(key),
          Buffer.from(plaintext),
          Buffer.from(aad),
          Buffer.from(nonce),
        );
        expect(toHex(envelope)).toBe(model.toString('hex'));
        expect(openEnvelope(key, envelope, aad)).toEqual(plaintext);
      }),
    );
  });

  it('any single flipped bit is refused with the code for where it lands', () => {
    fc.assert(
      fc.property(key32, anyBytes, anyBytes, nonce12, fc.nat(), fc.nat(7), (key, plaintext, aad, nonce, at, bit) => {
        const envelope = sealEnvelope(key, plaintext, aad, nonce);
        const index = at % envelope.length;
        envelope[index] = (envelope[index] as number) ^ (1 << bit);
        const code = index === 0 ? 'LK_WRAPPED_KEY_INVALID' : 'LK_KEY_UNWRAP_FAILED';
        expectLatchkeyError(() => openEnvelope(key, envelope, aad), code);
      }),
    );
  });

  it('any truncation is refused, as malformed once shorter than the overhead', () => {
    fc.assert(
      fc.property(key32, anyBytes, nonce12, fc.nat(), (key, plaintext, nonce, cut) => {
        const aad = new Uint8Array(0);
        const envelope = sealEnvelope(key, plaintext, aad, nonce);
        const length = cut % envelope.length;
        const code = length < ENVELOPE_OVERHEAD ? 'LK_WRAPPED_KEY_INVALID' : 'LK_KEY_UNWRAP_FAILED';
        expectLatchkeyError(() => openEnvelope(key, envelope.subarray(0, length), aad), code);
      }),
    );
  });

  it('arbitrary bytes never open and only ever raise the two envelope codes', () => {
    fc.assert(
      fc.property(key32, fc.uint8Array({ maxLength: 80 }), (key, garbage) => {
        let caught: unknown;
        try {
          openEnvelope(key, garbage, new Uint8Array(0));
        } catch (error) {
          caught = error;
        }
        expect(caught).toMatchObject({ name: 'LatchkeyError' });
        expect(['LK_WRAPPED_KEY_INVALID', 'LK_KEY_UNWRAP_FAILED']).toContain((caught as { code: string }).code);
      }),
    );
  });
});
