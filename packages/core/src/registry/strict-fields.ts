import { ed25519 } from '@noble/curves/ed25519.js';
import { fromBase64Url } from '../encoding.js';
import { LatchkeyError } from '../errors.js';

/**
 * The field checks every registry parser shares. Each throws `LK_REGISTRY_BAD_LINK` naming the field,
 * so a refusal says where the link went wrong.
 */

/** An `LK_REGISTRY_BAD_LINK` error saying what is wrong. */
export function badLink(reason: string): LatchkeyError {
  return new LatchkeyError('LK_REGISTRY_BAD_LINK', `Malformed registry link: ${reason}.`);
}

/** A plain JSON object with exactly the member names `names`: none missing, none unknown. */
export function exactObject(value: unknown, field: string, names: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badLink(`${field} is not an object`);
  const record = value as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (!names.includes(name)) throw badLink(`${field} has an unknown field ${JSON.stringify(name)}`);
  }
  for (const name of names) {
    if (!Object.hasOwn(record, name)) throw badLink(`${field}.${name} is missing`);
  }
  return record;
}

/** A safe integer in [min, Number.MAX_SAFE_INTEGER]; JCS links hold no other numbers. */
export function safeInteger(value: unknown, field: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw badLink(`${field} is not an integer of at least ${min} and at most 2^53 - 1`);
  }
  return value;
}

/** Canonical unpadded base64url of `min`..`max` bytes; returns the text, which is then the bytes' one spelling. */
export function base64UrlField(value: unknown, field: string, min: number, max = min): string {
  if (typeof value !== 'string') throw badLink(`${field} is not a string`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(value, field);
  } catch {
    throw badLink(`${field} is not canonical unpadded base64url`);
  }
  if (bytes.length < min || bytes.length > max) {
    throw badLink(min === max ? `${field} is not ${min} bytes` : `${field} is not ${min} to ${max} bytes`);
  }
  return value;
}

/**
 * An Ed25519 public key: 32 bytes that decode to a curve point under RFC 8032's strict rules and are not
 * of small order, since a small-order key lets anyone make signatures that verify under it.
 */
export function ed25519PublicKeyField(value: unknown, field: string): string {
  const text = base64UrlField(value, field, 32);
  try {
    if (!ed25519.Point.fromBytes(fromBase64Url(text), false).isSmallOrder()) return text;
  } catch {
    // Not a point: refused below with the same message.
  }
  throw badLink(`${field} is not a usable Ed25519 public key`);
}
