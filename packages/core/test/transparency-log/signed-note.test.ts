import {
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatKeyId,
  formatNote,
  formatSignerKey,
  formatVerifierKey,
  MAX_NOTE_SIGNATURES,
  type NoteSignature,
  noteKeyId,
  openNote,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  toBase64,
  utf8,
} from '@latchkey/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectLatchkeyError } from '../vector-files.js';
import { noteVectors, testSeed } from './note-vectors.js';

const alice = ed25519NoteSigner('example.com/alice', testSeed('alice'));
const aliceKey = ed25519NoteVerifier('example.com/alice', ed25519.getPublicKey(testSeed('alice')));
const bob = ed25519NoteSigner('example.com/bob', testSeed('bob'));
const bobKey = ed25519NoteVerifier('example.com/bob', ed25519.getPublicKey(testSeed('bob')));
const text = 'hello\nworld\n';

describe('C2SP and Go vectors, byte for byte', () => {
  it.each(noteVectors.verify)('$name verifies with its vkey', (v) => {
    const opened = openNote(v.note, [parseVerifierKey(v.vkey)]);
    expect(opened.text).toBe(v.text);
    expect(opened.verified.map((s) => s.name)).toEqual(['example.com/foo']);
    expect(formatNote(opened)).toBe(v.note);
  });

  it.each(noteVectors.sign)('$name: the skey signs exactly the given note, and its vkey opens it', (v) => {
    const signer = parseSignerKey(v.skey);
    expect(signNote(v.text, [signer])).toBe(v.note);
    expect(openNote(v.note, [parseVerifierKey(v.vkey)]).text).toBe(v.text);
    // The key strings round-trip: formatSignerKey of the seed gives back both strings.
    // The seed is what follows the fourth "+" (base64 may hold more of them).
    const seedBase64 = v.skey.split('+').slice(4).join('+');
    const seed = Uint8Array.from(atob(seedBase64), (c) => c.charCodeAt(0)).subarray(1);
    expect(formatSignerKey('PeterNeumann', seed)).toEqual({ skey: v.skey, vkey: v.vkey });
  });
});

describe('opening a note (signed-note §Signatures)', () => {
  it('ignores signatures from unknown keys, even one sharing a name or an id with a known key', () => {
    const impostorName = { name: 'example.com/alice', keyId: (alice.keyId + 1) >>> 0, signature: new Uint8Array(64) };
    const impostorId = { name: 'example.com/mallory', keyId: alice.keyId, signature: new Uint8Array(64) };
    const signed = parseNote(signNote(text, [bob, alice]));
    const note = { text, signatures: [impostorName, ...signed.signatures, impostorId] };
    const opened = openNote(formatNote(note), [aliceKey]);
    expect(opened.verified.map((s) => s.name)).toEqual(['example.com/alice']);
    expect(opened.unverified).toHaveLength(3);
  });

  it('rejects the note when a known key fails, even if another known key verifies', () => {
    const note = parseNote(signNote(text, [alice, bob]));
    const broken = note.signatures[1] as NoteSignature;
    const signature = broken.signature.slice();
    signature[0] = (signature[0] as number) ^ 1;
    const tampered = formatNote({ text, signatures: [note.signatures[0] as NoteSignature, { ...broken, signature }] });
    expectLatchkeyError(() => openNote(tampered, [aliceKey, bobKey]), 'LK_LOG_NOTE_BAD_SIGNATURE');
    expect(openNote(tampered, [aliceKey]).verified).toHaveLength(1);
  });

  it('rejects an altered text', () => {
    const signed = signNote(text, [alice]);
    expectLatchkeyError(() => openNote(signed.replace('world', 'World'), [aliceKey]), 'LK_LOG_NOTE_BAD_SIGNATURE');
  });

  it('rejects a note that no known key verifies', () => {
    expectLatchkeyError(() => openNote(signNote(text, [bob]), [aliceKey]), 'LK_LOG_NOTE_UNVERIFIED');
    expectLatchkeyError(() => openNote(signNote(text, [bob]), []), 'LK_LOG_NOTE_UNVERIFIED');
  });

  it('rejects a known key that signs twice', () => {
    const twice = signNote(parseNote(signNote(text, [alice])), [alice]);
    expectLatchkeyError(() => openNote(twice, [aliceKey]), 'LK_LOG_NOTE_MALFORMED');
  });

  it('takes up to 100 signatures and refuses 101', () => {
    const others = Array.from({ length: MAX_NOTE_SIGNATURES - 1 }, (_, i) => ({
      name: `witness${i}.example`,
      keyId: i,
      signature: new Uint8Array(72),
    }));
    const signed = parseNote(signNote(text, [alice]));
    const hundred = formatNote({ text, signatures: [...others, ...signed.signatures] });
    expect(openNote(hundred, [aliceKey]).unverified).toHaveLength(99);
    const extra = { name: 'one.more', keyId: 7, signature: new Uint8Array(64) };
    const lines = hundred + formatNote({ text, signatures: [extra] }).slice(text.length + 1);
    expectLatchkeyError(() => parseNote(lines), 'LK_LOG_NOTE_MALFORMED');
  });
});

describe('malformed notes are refused with LK_LOG_NOTE_MALFORMED', () => {
  const good = signNote(text, [alice]);
  const line = good.slice(text.length + 1);
  const sig = line.slice(line.lastIndexOf(' ') + 1, -1);
  const cases: [string, string | Uint8Array][] = [
    ['no blank line', good.replace('\n\n', '\n')],
    ['nothing after the blank line', `${text}\n`],
    ['a signature line without its final newline', good.slice(0, -1)],
    ['a signature line without the em dash', good.replace('— ', '- ')],
    ['a name and signature without a space', good.replace('alice ', 'alice')],
    ['an empty key name', good.replace('— example.com/alice ', '—  ')],
    ['a key name with a plus', good.replace('example.com/alice', 'example.com+alice')],
    ['a key name with a Unicode space', good.replace('example.com/alice', 'example.com\u00a0alice')],
    ['unpadded base64', good.replace(sig, sig.replace(/=+$/, ''))],
    ['non-canonical base64 (trailing bits)', good.replace(sig, `${sig.slice(0, -3)}B==`)],
    ['base64url alphabet', good.replace(sig, sig.replaceAll('+', '-').replaceAll('/', '_'))],
    ['a signature of four bytes (a key id alone)', good.replace(sig, toBase64(new Uint8Array(4), true))],
    ['a tab in the text', good.replace('hello', 'hel\tlo')],
    ['a carriage return', good.replace('hello\n', 'hello\r\n')],
    ['a NUL byte', good.replace('hello', 'hel\u0000lo')],
    ['a lone surrogate', good.replace('hello', 'hel\ud800lo')],
    ['invalid UTF-8 bytes', Uint8Array.of(...utf8(good).subarray(0, 3), 0xff, ...utf8(good).subarray(3))],
    ['an empty message', ''],
  ];
  it.each(cases)('%s', (_, message) => {
    expectLatchkeyError(() => parseNote(message), 'LK_LOG_NOTE_MALFORMED');
    expectLatchkeyError(() => openNote(message, [aliceKey]), 'LK_LOG_NOTE_MALFORMED');
  });

  it('the text may hold blank lines: it ends at the last one', () => {
    const blanks = 'a\n\nb\n\n';
    const note = parseNote(signNote(blanks, [alice]));
    expect(note.text).toBe(blanks);
    expect(openNote(signNote(blanks, [alice]), [aliceKey]).text).toBe(blanks);
  });

  it('signing refuses a text that does not end in a newline or holds a control character', () => {
    expectLatchkeyError(() => signNote('no newline', [alice]), 'LK_LOG_NOTE_MALFORMED');
    expectLatchkeyError(() => signNote('tab\there\n', [alice]), 'LK_LOG_NOTE_MALFORMED');
  });
});

describe('key strings', () => {
  const { skey, vkey } = formatSignerKey('example.com/log', testSeed('log'));

  it('the id is SHA-256(name || 0x0A || 0x01 || key)[:4], written in lowercase hex', () => {
    const publicKey = ed25519.getPublicKey(testSeed('log'));
    const id = formatKeyId(noteKeyId('example.com/log', 1, publicKey));
    expect(vkey).toBe(`example.com/log+${id}+${toBase64(Uint8Array.of(1, ...publicKey), true)}`);
    expect(formatVerifierKey('example.com/log', 1, publicKey)).toBe(vkey);
    expect(skey.startsWith(`PRIVATE+KEY+example.com/log+${id}+`)).toBe(true);
  });

  const badVkeys: [string, string][] = [
    ['two parts', vkey.split('+').slice(0, 2).join('+')],
    ['a wrong id', vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')],
    ['an uppercase id', vkey.replace(/\+([0-9a-f]{8})\+/, (_, id: string) => `+${id.toUpperCase()}+`)],
    ['a short id', vkey.replace(/\+([0-9a-f]{8})\+/, (_, id: string) => `+${id.slice(1)}+`)],
    ['a name with a space', `a b+${vkey.split('+').slice(1).join('+')}`],
    ['an empty name', `+${vkey.split('+').slice(1).join('+')}`],
    ['bad base64', `${vkey}!`],
    ['a type 2 key', formatVerifierKey('example.com/log', 2, ed25519.getPublicKey(testSeed('log')))],
    ['a 31-byte key', formatVerifierKey('example.com/log', 1, new Uint8Array(31))],
    ['a cosignature key (type 4)', formatVerifierKey('example.com/log', 4, ed25519.getPublicKey(testSeed('log')))],
  ];
  it.each(badVkeys)('a vkey with %s is refused', (_, bad) => {
    expectLatchkeyError(() => parseVerifierKey(bad), 'LK_LOG_KEY_INVALID');
  });

  const badSkeys: [string, string][] = [
    ['no PRIVATE+KEY prefix', skey.replace('PRIVATE+KEY+', '')],
    ['a lowercase prefix', skey.replace('PRIVATE', 'private')],
    ['an id of another key', skey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')],
    ['another name', skey.replace('example.com/log', 'example.com/other')],
    ['a short seed', `PRIVATE+KEY+example.com/log+00000000+${toBase64(new Uint8Array(32), true)}`],
    ['a type 2 seed', skey.replace(/\+A[^+]*$/, `+${toBase64(Uint8Array.of(2, ...testSeed('log')), true)}`)],
  ];
  it.each(badSkeys)('an skey with %s is refused', (_, bad) => {
    expectLatchkeyError(() => parseSignerKey(bad), 'LK_LOG_KEY_INVALID');
  });

  it('signer and verifier names must be valid key names', () => {
    expectLatchkeyError(() => ed25519NoteSigner('bad name', testSeed('x')), 'LK_LOG_KEY_INVALID');
    expectLatchkeyError(() => ed25519NoteVerifier('bad+name', new Uint8Array(32)), 'LK_LOG_KEY_INVALID');
    expectLatchkeyError(() => ed25519NoteSigner('', testSeed('x')), 'LK_LOG_KEY_INVALID');
  });
});

/** Drops the characters below U+0020 that a note may not hold. */
function withoutControlCharacters(line: string): string {
  return [...line].filter((c) => c.charCodeAt(0) >= 0x20).join('');
}

describe('round trips (property)', () => {
  const noteText = fc
    .array(fc.string({ unit: 'grapheme', maxLength: 30 }), { minLength: 1, maxLength: 5 })
    .map((lines) => `${lines.map(withoutControlCharacters).join('\n')}\n`);

  it('any valid text signs and opens, and parse/format is the identity', () => {
    fc.assert(
      fc.property(noteText, fc.uint8Array({ minLength: 32, maxLength: 32 }), (t, seed) => {
        const signer = ed25519NoteSigner('example.com/prop', seed);
        const verifier = ed25519NoteVerifier('example.com/prop', ed25519.getPublicKey(seed));
        const signed = signNote(t, [signer]);
        expect(formatNote(parseNote(signed))).toBe(signed);
        expect(openNote(signed, [verifier]).text).toBe(t);
        const { skey, vkey } = formatSignerKey('example.com/prop', seed);
        expect(openNote(signNote(t, [parseSignerKey(skey)]), [parseVerifierKey(vkey)]).text).toBe(t);
      }),
      { numRuns: 100 },
    );
  });
});
