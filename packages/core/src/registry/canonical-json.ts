/**
 * RFC 8785, the JSON Canonicalization Scheme (JCS): one spelling per JSON value, so signatures and
 * hashes can be taken over the bytes. Chosen over deterministic CBOR (RFC 8949 §4.2) because a link
 * then stays readable in a log, a tile and a test failure, `JSON.parse` is its decoder in every
 * runtime we serve (Node, browsers), and JCS needs no library: ECMAScript's own `JSON.stringify` of a
 * string and `Number.prototype.toString` are exactly the serializations §3.2.2 prescribes. The one
 * subtle part of JCS, number formatting, we keep out of our links (they hold integers only, checked
 * by their parsers), so a verifier in another language needs no ES6 float printing.
 *
 * Vectors: packages/core/vectors/jcs-rfc8785.json (cyberphone/json-canonicalization testdata).
 */

/** Why a value or a byte string is not canonical JSON; callers turn it into their own error code. */
export class CanonicalJsonError extends TypeError {
  override readonly name = 'CanonicalJsonError';
}

/** A lone surrogate: a high one not followed by a low one, or a low one not after a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function encodeString(text: string): string {
  // RFC 8785 §3.2.2.2: lone surrogates MUST make a compliant implementation stop with an error.
  if (LONE_SURROGATE.test(text)) throw new CanonicalJsonError('a string holds a lone UTF-16 surrogate');
  return JSON.stringify(text);
}

function encodeNumber(value: number): string {
  // §3.2.2.3: ES6 Number serialization, which is what String() does; NaN and infinities are not JSON.
  if (!Number.isFinite(value)) throw new CanonicalJsonError('NaN and Infinity are not JSON numbers');
  return String(value);
}

/** Object members sorted by their names as arrays of UTF-16 code units (§3.2.3), which is `<` on strings. */
function byUtf16CodeUnits([a]: [string, unknown], [b]: [string, unknown]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function encodeValue(value: unknown): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return encodeString(value);
  if (typeof value === 'number') return encodeNumber(value);
  if (Array.isArray(value)) return `[${value.map(encodeValue).join(',')}]`;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const members = Object.entries(value as Record<string, unknown>).sort(byUtf16CodeUnits);
    return `{${members.map(([name, member]) => `${encodeString(name)}:${encodeValue(member)}`).join(',')}}`;
  }
  throw new CanonicalJsonError(`${typeof value} is not a JSON value`);
}

/** The RFC 8785 canonical form of a JSON value, as text. Throws {@link CanonicalJsonError} on a non-JSON value. */
export function canonicalizeJson(value: unknown): string {
  return encodeValue(value);
}

/** The RFC 8785 canonical form of a JSON value as UTF-8 bytes: the bytes that are signed and hashed. */
export function encodeCanonicalJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(encodeValue(value));
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses UTF-8 bytes as JSON, without checking that they are canonical. A BOM is kept (and then fails
 * JSON.parse), so it cannot be silently dropped. Throws {@link CanonicalJsonError}.
 */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw new CanonicalJsonError('not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CanonicalJsonError('not valid JSON');
  }
}

/**
 * True when `bytes` are exactly the canonical encoding of `value`: the strict decoders re-encode what
 * they parsed and compare, which refuses any other key order, whitespace, escape, number spelling or
 * duplicate member name in one rule.
 */
export function isCanonicalEncodingOf(value: unknown, bytes: Uint8Array): boolean {
  let canonical: Uint8Array;
  try {
    canonical = encodeCanonicalJson(value);
  } catch {
    return false;
  }
  return canonical.length === bytes.length && canonical.every((byte, i) => byte === bytes[i]);
}

/** Parses bytes that must already be canonical JSON (RFC 8785); throws {@link CanonicalJsonError} otherwise. */
export function decodeCanonicalJson(bytes: Uint8Array): unknown {
  const value = parseJsonBytes(bytes);
  if (!isCanonicalEncodingOf(value, bytes)) throw new CanonicalJsonError('not in RFC 8785 canonical form');
  return value;
}
