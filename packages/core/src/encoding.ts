import { LatchkeyError } from './errors.js';

/**
 * Byte encodings. Decoders are strict: they reject non-canonical input (stray padding, trailing bits
 * that are not zero, other alphabets, whitespace), so one value has exactly one spelling on the wire.
 */

const STD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function lookupTable(alphabet: string): Int16Array {
  const table = new Int16Array(128).fill(-1);
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
}
const STD_TABLE = lookupTable(STD);
const URL_TABLE = lookupTable(URL);

function encode(bytes: Uint8Array, alphabet: string, pad: boolean): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number);
    out += alphabet[n >> 18] + (alphabet[(n >> 12) & 63] as string) + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = (bytes[i] as number) << 16;
    out += (alphabet[n >> 18] as string) + alphabet[(n >> 12) & 63] + (pad ? '==' : '');
  } else if (rest === 2) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8);
    out += (alphabet[n >> 18] as string) + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? '=' : '');
  }
  return out;
}

/**
 * Decodes base64 in the given alphabet, padded or not (`padding: 'optional'`) or strictly unpadded.
 * Returns undefined on any non-canonical input; callers turn that into their own error code.
 */
function tryDecode(text: string, table: Int16Array, padding: 'forbidden' | 'optional'): Uint8Array | undefined {
  let body = text;
  if (padding === 'optional' && body.length % 4 === 0 && body.endsWith('=')) {
    body = body.endsWith('==') ? body.slice(0, -2) : body.slice(0, -1);
  }
  if (body.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    const v = c < 128 ? (table[c] as number) : -1;
    if (v < 0) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Canonical form: the bits left over after the last whole byte must be zero.
  if ((acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}

/** Unpadded base64url (RFC 4648 §5), the encoding of every byte field in our JSON APIs. */
export function toBase64Url(bytes: Uint8Array): string {
  return encode(bytes, URL, false);
}

/** Strict inverse of {@link toBase64Url}; throws `LK_BAD_BASE64` naming the field. */
export function fromBase64Url(text: string, field = 'value'): Uint8Array {
  const bytes = tryDecode(text, URL_TABLE, 'forbidden');
  if (bytes === undefined) throw new LatchkeyError('LK_BAD_BASE64', `${field} is not canonical unpadded base64url.`);
  return bytes;
}

/** Standard-alphabet base64, unpadded unless `pad` (Matrix writes unpadded, some peers pad). */
export function toBase64(bytes: Uint8Array, pad = false): string {
  return encode(bytes, STD, pad);
}

/** Standard-alphabet base64 with optional padding, rejecting non-canonical trailing bits (as vodozemac does). */
export function fromBase64(text: string, field = 'value'): Uint8Array {
  const bytes = tryDecode(text, STD_TABLE, 'optional');
  if (bytes === undefined) throw new LatchkeyError('LK_BAD_BASE64', `${field} is not canonical base64.`);
  return bytes;
}

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError('not hex');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
