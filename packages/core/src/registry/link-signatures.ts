import { ed25519 } from '@noble/curves/ed25519.js';
import { fromBase64Url, toBase64Url } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import type { Link, LinkSignature, SignedLink } from './link.js';
import { linkSigningMessage, MAX_LINK_SIGNATURES, parseSignedLink } from './link-encoding.js';

/**
 * Ed25519 (RFC 8032) signatures on links. Every signer signs the same message, the domain-separated
 * encoding of the whole link, so a countersigning device signs its own key being added (Keybase's
 * reverse signature) along with everything else the link says.
 */

/**
 * Signs `link` with each of `secretKeys` (32-byte Ed25519 seeds) and returns the signed link, its
 * signatures in their canonical order. The result is parsed back strictly, so a builder cannot produce
 * a link that a verifier would refuse as malformed.
 */
export function signLink(link: Link, secretKeys: readonly Uint8Array[]): SignedLink {
  if (secretKeys.length < 1 || secretKeys.length > MAX_LINK_SIGNATURES) {
    throw new LatchkeyError('LK_REGISTRY_BAD_LINK', `A link takes 1 to ${MAX_LINK_SIGNATURES} signatures.`);
  }
  const message = linkSigningMessage(link);
  const sigs = secretKeys
    .map((secretKey): LinkSignature => {
      return {
        key: toBase64Url(ed25519.getPublicKey(secretKey)),
        sig: toBase64Url(ed25519.sign(message, secretKey)),
      };
    })
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return parseSignedLink({ link, sigs });
}

/**
 * Checks every signature of a signed link against its own key, with RFC 8032's strict encodings (not
 * ZIP-215's looser ones), so no one but a signer can make a second valid form of a signature. Throws
 * `LK_REGISTRY_BAD_SIGNATURE` naming the signer. Whether the signers are the right ones is the
 * chain's business (chain.ts).
 */
export function verifyLinkSignatures(signed: SignedLink): void {
  const message = linkSigningMessage(signed.link);
  for (const { key, sig } of signed.sigs) {
    if (!ed25519.verify(fromBase64Url(sig), message, fromBase64Url(key), { zip215: false })) {
      throw new LatchkeyError(
        'LK_REGISTRY_BAD_SIGNATURE',
        `The signature of key ${key} on registry link ${signed.link.seq} does not verify.`,
      );
    }
  }
}

/** The keys that signed a link (assumed verified). */
export function signersOf(signed: SignedLink): Set<string> {
  return new Set(signed.sigs.map((s) => s.key));
}
