import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, fromUtf8, toHex, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { decodeNoteBase64, encodeNoteBase64 } from './note-base64.js';

/**
 * C2SP signed-note v1.0.0: a UTF-8 text ending in a newline, a blank line, then signature lines
 * `— <name> base64(key ID || signature)`. Keys are told apart by (name, key ID); the ID is
 * SHA-256(name || 0x0A || type || public key)[:4]. Ed25519 note signatures are type 0x01.
 */

/** Signature type 0x01: an Ed25519 signature (RFC 8032) over the note text. */
export const NOTE_TYPE_ED25519 = 0x01;

/** More signatures than this make a note malformed (golang.org/x/mod/sumdb/note's limit; C2SP asks for 16). */
export const MAX_NOTE_SIGNATURES = 100;

const SIGNATURE_PREFIX = '— ';

/** One signature line: the signer's name and key ID and the signature bytes after the ID. */
export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  readonly signature: Uint8Array;
}

/** A note split into its text (which ends in "\n") and its signature lines, nothing verified yet. */
export interface Note {
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A key a note can be checked against; cosignature keys (tlog-cosignature) are verifiers too. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /** True when `signature` (the bytes after the key ID) is this key's signature on `text`. */
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** A key that signs notes; `sign` returns the bytes that follow the key ID on the signature line. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  sign(text: Uint8Array): Uint8Array;
}

/** A note that opened: which of its signatures verified, and which were from keys not asked about. */
export interface OpenedNote extends Note {
  readonly verified: readonly NoteSignature[];
  readonly unverified: readonly NoteSignature[];
}

function malformed(why: string): LatchkeyError {
  return new LatchkeyError('LK_LOG_NOTE_MALFORMED', `Not a well-formed signed note: ${why}.`);
}

function badKey(why: string): LatchkeyError {
  return new LatchkeyError('LK_LOG_KEY_INVALID', `Not a usable note key: ${why}.`);
}

/** Key names are non-empty, with no Unicode space and no "+" (which separates a key string's parts). */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s\u0085+]/u.test(name) && !/\p{Surrogate}/u.test(name) && !hasControl(name);
}

/** Control characters below U+0020 other than newline are not allowed anywhere in a note. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 && code !== 0x0a) return true;
  }
  return false;
}

/** SHA-256(name || 0x0A || type || public key)[:4] as a big-endian uint32. */
export function noteKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const digest = sha256(concatBytes(utf8(name), Uint8Array.of(0x0a, type), publicKey));
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0);
}

function keyIdBytes(keyId: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, keyId);
  return bytes;
}

function toText(message: string | Uint8Array): string {
  if (typeof message === 'string') {
    if (/\p{Surrogate}/u.test(message)) throw malformed('it is not valid UTF-8 (a lone surrogate)');
    return message;
  }
  try {
    return fromUtf8(message);
  } catch {
    throw malformed('it is not valid UTF-8');
  }
}

/** Checks a note text: valid UTF-8, ending in "\n", no control characters but "\n". */
function requireNoteText(text: string): void {
  if (!text.endsWith('\n')) throw malformed('the text does not end in a newline');
  if (hasControl(text)) throw malformed('the text holds a control character other than newline');
  if (/\p{Surrogate}/u.test(text)) throw malformed('the text is not valid UTF-8 (a lone surrogate)');
}

/** One signature line: `— <name> base64(key ID || signature)\n`. */
export function formatSignatureLine(signature: NoteSignature): string {
  if (!isValidKeyName(signature.name)) throw badKey(`"${signature.name}" is not a valid key name`);
  return `${SIGNATURE_PREFIX}${signature.name} ${encodeNoteBase64(concatBytes(keyIdBytes(signature.keyId), signature.signature))}\n`;
}

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIGNATURE_PREFIX)) throw malformed('a signature line does not start with "— "');
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) throw malformed('a signature line has no space between name and signature');
  const name = rest.slice(0, space);
  const bytes = decodeNoteBase64(rest.slice(space + 1));
  if (!isValidKeyName(name)) throw malformed('a signature line has an invalid key name');
  if (bytes === undefined || bytes.length < 5) {
    throw malformed('a signature is not canonical base64 of a key ID and at least one byte');
  }
  const keyId = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  return { name, keyId, signature: bytes.subarray(4) };
}

/**
 * Splits a signed note into its text and signature lines, checking the syntax only. The text ends at
 * the last blank line (signed-note §Format); throws `LK_LOG_NOTE_MALFORMED` on any deviation.
 */
export function parseNote(message: string | Uint8Array): Note {
  const whole = toText(message);
  if (hasControl(whole)) throw malformed('it holds a control character other than newline');
  const split = whole.lastIndexOf('\n\n');
  if (split < 0) throw malformed('there is no blank line before the signatures');
  const text = whole.slice(0, split + 1);
  const block = whole.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) throw malformed('the signatures do not end in a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw malformed(`more than ${MAX_NOTE_SIGNATURES} signatures`);
  return { text, signatures: lines.map(parseSignatureLine) };
}

/** The note's bytes: text, blank line, signature lines. */
export function formatNote(note: Note): string {
  requireNoteText(note.text);
  return `${note.text}\n${note.signatures.map(formatSignatureLine).join('')}`;
}

/**
 * Signs a note text with each signer (appending to signatures it already carries, if a note is given).
 * The text must end in "\n" and hold no control character but "\n".
 */
export function signNote(note: string | Note, signers: readonly NoteSigner[]): string {
  const { text, signatures } = typeof note === 'string' ? { text: note, signatures: [] } : note;
  requireNoteText(text);
  const bytes = utf8(text);
  const added = signers.map((signer) => ({ name: signer.name, keyId: signer.keyId, signature: signer.sign(bytes) }));
  const all = [...signatures, ...added];
  if (all.length > MAX_NOTE_SIGNATURES) throw malformed(`more than ${MAX_NOTE_SIGNATURES} signatures`);
  return formatNote({ text, signatures: all });
}

/**
 * Opens a signed note with the keys the caller trusts (signed-note §Signatures): signatures from
 * unknown keys are set aside, a known key's signature must verify (else `LK_LOG_NOTE_BAD_SIGNATURE`),
 * a known key may sign only once (else `LK_LOG_NOTE_MALFORMED`), and at least one known key must have
 * signed (else `LK_LOG_NOTE_UNVERIFIED`).
 */
export function openNote(message: string | Uint8Array | Note, verifiers: readonly NoteVerifier[]): OpenedNote {
  const note = typeof message === 'object' && 'text' in message ? message : parseNote(message);
  const bytes = utf8(note.text);
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seen = new Set<string>();
  for (const signature of note.signatures) {
    const verifier = verifiers.find((v) => v.name === signature.name && v.keyId === signature.keyId);
    const key = `${signature.keyId}+${signature.name}`;
    if (verifier === undefined) {
      unverified.push(signature);
      continue;
    }
    if (seen.has(key)) throw malformed(`the key ${signature.name}+${formatKeyId(signature.keyId)} signed twice`);
    seen.add(key);
    if (!verifier.verify(bytes, signature.signature)) {
      throw new LatchkeyError(
        'LK_LOG_NOTE_BAD_SIGNATURE',
        `The signature of ${signature.name}+${formatKeyId(signature.keyId)} does not verify: the note was altered or forged.`,
      );
    }
    verified.push(signature);
  }
  if (verified.length === 0) throw new LatchkeyError('LK_LOG_NOTE_UNVERIFIED');
  return { text: note.text, signatures: note.signatures, verified, unverified };
}

/** Ed25519 verification as RFC 8032 states it (not ZIP 215's looser rules), false on any malformed input. */
export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** A note verifier for an Ed25519 public key (type 0x01). */
export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (!isValidKeyName(name)) throw badKey(`"${name}" is not a valid key name`);
  if (publicKey.length !== 32) throw badKey('an Ed25519 public key is 32 bytes');
  const key = publicKey.slice();
  return {
    name,
    keyId: noteKeyId(name, NOTE_TYPE_ED25519, key),
    verify: (text, signature) => signature.length === 64 && ed25519Verify(signature, text, key),
  };
}

/** A note signer from a 32-byte Ed25519 seed (RFC 8032 private key); the seed comes from the caller. */
export function ed25519NoteSigner(name: string, seed: Uint8Array): NoteSigner {
  if (!isValidKeyName(name)) throw badKey(`"${name}" is not a valid key name`);
  if (seed.length !== 32) throw badKey('an Ed25519 seed is 32 bytes');
  const secret = seed.slice();
  return {
    name,
    keyId: noteKeyId(name, NOTE_TYPE_ED25519, ed25519.getPublicKey(secret)),
    sign: (text) => ed25519.sign(text, secret),
  };
}

/** The parts of a verifier key string `<name>+<8 hex ID>+<base64(type || key)>`, its ID checked. */
export interface VerifierKeyParts {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  readonly publicKey: Uint8Array;
}

/**
 * Splits a key string at its first `count - 1` plus signs: the last part is base64, which may itself
 * hold "+", while names never do.
 */
function splitKeyString(key: string, count: number): string[] | undefined {
  const parts: string[] = [];
  let rest = key;
  while (parts.length < count - 1) {
    const plus = rest.indexOf('+');
    if (plus < 0) return undefined;
    parts.push(rest.slice(0, plus));
    rest = rest.slice(plus + 1);
  }
  return [...parts, rest];
}

/** Parses any vkey and checks that its ID is the one its name, type and key give. */
export function parseVerifierKeyParts(vkey: string): VerifierKeyParts {
  const parts = splitKeyString(vkey, 3);
  if (parts === undefined) throw badKey('a verifier key has three parts joined by "+"');
  const [name, idHex, keyBase64] = parts as [string, string, string];
  if (!isValidKeyName(name)) throw badKey(`"${name}" is not a valid key name`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw badKey('the key ID is not 8 lowercase hex digits');
  const bytes = decodeNoteBase64(keyBase64);
  if (bytes === undefined || bytes.length < 2) throw badKey('the key is not canonical base64 of a type and a key');
  const type = bytes[0] as number;
  const publicKey = bytes.subarray(1);
  const keyId = Number.parseInt(idHex, 16);
  if (noteKeyId(name, type, publicKey) !== keyId) throw badKey('the key ID does not match the name and key');
  return { name, keyId, type, publicKey };
}

/** The vkey string of a key: `<name>+<8 hex ID>+<base64(type || key)>`. */
export function formatVerifierKey(name: string, type: number, publicKey: Uint8Array): string {
  if (!isValidKeyName(name)) throw badKey(`"${name}" is not a valid key name`);
  const id = formatKeyId(noteKeyId(name, type, publicKey));
  return `${name}+${id}+${encodeNoteBase64(concatBytes(Uint8Array.of(type), publicKey))}`;
}

/** Parses an Ed25519 note vkey (type 0x01, 32-byte key) into a verifier; throws `LK_LOG_KEY_INVALID`. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const { name, type, publicKey } = parseVerifierKeyParts(vkey);
  if (type !== NOTE_TYPE_ED25519) throw badKey(`type ${type} is not an Ed25519 note key (type 1)`);
  return ed25519NoteVerifier(name, publicKey);
}

/**
 * Parses a signer key `PRIVATE+KEY+<name>+<8 hex ID>+<base64(0x01 || seed)>` (golang.org/x/mod's
 * format); the ID is that of the public key, so it is checked after deriving it.
 */
export function parseSignerKey(skey: string): NoteSigner {
  const parts = splitKeyString(skey, 5);
  if (parts === undefined || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') {
    throw badKey('a signer key is "PRIVATE+KEY+<name>+<id>+<base64>"');
  }
  const [, , name, idHex, keyBase64] = parts as [string, string, string, string, string];
  if (!isValidKeyName(name)) throw badKey(`"${name}" is not a valid key name`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw badKey('the key ID is not 8 lowercase hex digits');
  const bytes = decodeNoteBase64(keyBase64);
  if (bytes === undefined || bytes.length !== 33 || bytes[0] !== NOTE_TYPE_ED25519) {
    throw badKey('the key is not canonical base64 of 0x01 and a 32-byte Ed25519 seed');
  }
  const signer = ed25519NoteSigner(name, bytes.subarray(1));
  if (signer.keyId !== Number.parseInt(idHex, 16)) throw badKey('the key ID does not match the name and key');
  return signer;
}

/** The signer key string for an Ed25519 seed, and its matching vkey. */
export function formatSignerKey(name: string, seed: Uint8Array): { skey: string; vkey: string } {
  const signer = ed25519NoteSigner(name, seed);
  const vkey = formatVerifierKey(name, NOTE_TYPE_ED25519, ed25519.getPublicKey(seed));
  const skey = `PRIVATE+KEY+${name}+${formatKeyId(signer.keyId)}+${encodeNoteBase64(concatBytes(Uint8Array.of(NOTE_TYPE_ED25519), seed))}`;
  return { skey, vkey };
}

/** The 8-hex-digit spelling of a key ID, as in key strings and error messages. */
export function formatKeyId(keyId: number): string {
  return toHex(keyIdBytes(keyId));
}
