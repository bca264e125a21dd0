import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, toBase64Url, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { encodeCanonicalJson, isCanonicalEncodingOf, parseJsonBytes } from './canonical-json.js';
import {
  LINK_HASH_DOMAIN,
  LINK_SIGNATURE_DOMAIN,
  type Link,
  type LinkSignature,
  MAX_SIGNED_LINK_BYTES,
  REGISTRY_LINK_VERSION,
  type SeenCheckpoint,
  type SignedLink,
} from './link.js';
import { isLinkType, parseLinkBody } from './link-body.js';
import { badLink, base64UrlField, ed25519PublicKeyField, exactObject, safeInteger } from './strict-fields.js';

/**
 * The wire and log form of a signed link, and the two digests taken over it: what a signer signs and
 * what the next link's `prev` holds. Decoding is strict: the bytes must be exactly the RFC 8785
 * encoding of what they parse to, so one link has exactly one encoding and one hash.
 */

/** No link type needs more signers than this (register-primary and transfer-primary have two). */
export const MAX_LINK_SIGNATURES = 2;

const LINK_FIELDS = ['version', 'account', 'seq', 'prev', 'type', 'body', 'seen', 'time'] as const;

function parseVersion(value: unknown): typeof REGISTRY_LINK_VERSION {
  const version = safeInteger(value, 'link.version', 1);
  if (version !== REGISTRY_LINK_VERSION) {
    throw new LatchkeyError(
      'LK_REGISTRY_UNKNOWN_VERSION',
      `Registry link version ${version} is unknown here (this software knows version ${REGISTRY_LINK_VERSION}).`,
    );
  }
  return REGISTRY_LINK_VERSION;
}

function parseSeen(value: unknown): SeenCheckpoint {
  const seen = exactObject(value, 'link.seen', ['size', 'root']);
  return {
    size: safeInteger(seen['size'], 'link.seen.size'),
    root: base64UrlField(seen['root'], 'link.seen.root', 32),
  };
}

/** Parses the unsigned link object; throws `LK_REGISTRY_BAD_LINK` or `LK_REGISTRY_UNKNOWN_VERSION`. */
export function parseLink(value: unknown): Link {
  // The version is read before the shape, so a newer link is reported as newer rather than as malformed.
  if (typeof value === 'object' && value !== null && Object.hasOwn(value, 'version')) {
    parseVersion((value as { version: unknown }).version);
  }
  const link = exactObject(value, 'link', LINK_FIELDS);
  const type = link['type'];
  if (!isLinkType(type)) throw badLink('link.type is not a known link type');
  return {
    version: parseVersion(link['version']),
    account: base64UrlField(link['account'], 'link.account', 32),
    seq: safeInteger(link['seq'], 'link.seq'),
    prev: base64UrlField(link['prev'], 'link.prev', 32),
    type,
    body: parseLinkBody(type, link['body']),
    seen: parseSeen(link['seen']),
    time: safeInteger(link['time'], 'link.time'),
  } as Link;
}

function parseSignatures(value: unknown): LinkSignature[] {
  if (!Array.isArray(value) || value.length < 1 || value.length > MAX_LINK_SIGNATURES) {
    throw badLink(`sigs is not a list of 1 to ${MAX_LINK_SIGNATURES} signatures`);
  }
  const sigs = value.map((item, i): LinkSignature => {
    const entry = exactObject(item, `sigs[${i}]`, ['key', 'sig']);
    return {
      key: ed25519PublicKeyField(entry['key'], `sigs[${i}].key`),
      sig: base64UrlField(entry['sig'], `sigs[${i}].sig`, 64),
    };
  });
  // One order, no key twice: otherwise one link would have several encodings, or count a signer twice.
  for (let i = 1; i < sigs.length; i++) {
    if (!((sigs[i - 1] as LinkSignature).key < (sigs[i] as LinkSignature).key)) {
      throw badLink('sigs are not sorted by key, or a key signs twice');
    }
  }
  return sigs;
}

/** Parses a signed link `{link, sigs}` from parsed JSON, strictly (signatures are not verified here). */
export function parseSignedLink(value: unknown): SignedLink {
  const signed = exactObject(value, 'signed link', ['link', 'sigs']);
  return { link: parseLink(signed['link']), sigs: parseSignatures(signed['sigs']) };
}

/** The RFC 8785 encoding of an unsigned link. */
export function encodeLink(link: Link): Uint8Array {
  return encodeCanonicalJson(link);
}

/** The RFC 8785 encoding of a signed link: the bytes of its log leaf. */
export function encodeSignedLink(signed: SignedLink): Uint8Array {
  return encodeCanonicalJson(signed);
}

/**
 * Decodes a signed link from its bytes, refusing anything but its canonical encoding (other key order,
 * whitespace, escapes, number spellings, duplicate names, a BOM, invalid UTF-8) with
 * `LK_REGISTRY_BAD_LINK`. The shape is checked before the canonical comparison, so the comparison
 * only ever re-encodes a value of bounded depth.
 */
export function decodeSignedLink(bytes: Uint8Array): SignedLink {
  if (bytes.length > MAX_SIGNED_LINK_BYTES) throw badLink(`it is larger than ${MAX_SIGNED_LINK_BYTES} bytes`);
  let value: unknown;
  try {
    value = parseJsonBytes(bytes);
  } catch (error) {
    throw badLink((error as Error).message);
  }
  const signed = parseSignedLink(value);
  if (!isCanonicalEncodingOf(value, bytes)) throw badLink('it is not in RFC 8785 canonical form');
  return signed;
}

/** What each signer of a link signs: {@link LINK_SIGNATURE_DOMAIN} then the link's encoding (signatures excluded). */
export function linkSigningMessage(link: Link): Uint8Array {
  return concatBytes(utf8(LINK_SIGNATURE_DOMAIN), encodeLink(link));
}

/**
 * The hash of a signed link, SHA-256({@link LINK_HASH_DOMAIN} || encoding): what the next link's
 * `prev` holds. It covers the signatures too, so the chain commits to who signed each link.
 */
export function linkHash(signedLinkBytes: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8(LINK_HASH_DOMAIN), signedLinkBytes));
}

/** {@link linkHash} as unpadded base64url, the form `prev` carries. */
export function linkHashBase64Url(signedLinkBytes: Uint8Array): string {
  return toBase64Url(linkHash(signedLinkBytes));
}
