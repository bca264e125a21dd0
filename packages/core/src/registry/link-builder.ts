import { fromBase64Url, toBase64Url } from '../encoding.js';
import type { AccountState } from './account-state.js';
import { GENESIS_PREV, type Link, REGISTRY_LINK_VERSION } from './link.js';
import { encodeSignedLink, parseLink } from './link-encoding.js';
import { signLink } from './link-signatures.js';

/**
 * Builders for the links a client makes (and tests, and later the SDK): keys, hashes and the account
 * as bytes in, a link checked by the same strict parser a verifier runs out. Signing is separate
 * ({@link signLink}) so that two devices can each sign the same link (a countersignature).
 */

/** One link type's content, with its byte fields as bytes. */
export type LinkContent =
  | { type: 'register-primary'; identityKey: Uint8Array; primaryKey: Uint8Array }
  | { type: 'declare-group-key'; epoch: number; groupKey: Uint8Array; deviceListHash: Uint8Array }
  | { type: 'transfer-primary'; newPrimaryKey: Uint8Array }
  | { type: 'deregister-primary' }
  | { type: 'tombstone' };

/** Where a link sits and what its signer knew: the fields besides its type and body. */
export interface LinkPlace {
  /** The log's keyed hash of the account (32 bytes). */
  account: Uint8Array;
  seq: number;
  /** The previous signed link's hash; omitted for seq 0, where it is all zeros. */
  prev?: Uint8Array;
  /** The checkpoint the signer last verified. */
  seen: { size: number; root: Uint8Array };
  /** Unix milliseconds. */
  time: number;
}

function bodyOf(content: LinkContent): Record<string, unknown> {
  switch (content.type) {
    case 'register-primary':
      return { identityKey: toBase64Url(content.identityKey), primaryKey: toBase64Url(content.primaryKey) };
    case 'declare-group-key':
      return {
        epoch: content.epoch,
        groupKey: toBase64Url(content.groupKey),
        deviceListHash: toBase64Url(content.deviceListHash),
      };
    case 'transfer-primary':
      return { newPrimaryKey: toBase64Url(content.newPrimaryKey) };
    case 'deregister-primary':
    case 'tombstone':
      return {};
  }
}

/** Builds an unsigned link; throws `LK_REGISTRY_BAD_LINK` on a field of the wrong size or range. */
export function createLink(place: LinkPlace, content: LinkContent): Link {
  return parseLink({
    version: REGISTRY_LINK_VERSION,
    account: toBase64Url(place.account),
    seq: place.seq,
    prev: place.prev === undefined ? GENESIS_PREV : toBase64Url(place.prev),
    type: content.type,
    body: bodyOf(content),
    seen: { size: place.seen.size, root: toBase64Url(place.seen.root) },
    time: place.time,
  });
}

/** Builds the link that follows `state`: its account, seq and prev come from the state. */
export function createNextLink(
  state: AccountState,
  next: { seen: { size: number; root: Uint8Array }; time: number },
  content: LinkContent,
): Link {
  const place = { account: fromBase64Url(state.account), seq: state.seq + 1, prev: fromBase64Url(state.head) };
  return createLink({ ...place, ...next }, content);
}

/** Signs a link with the given Ed25519 secret keys (32-byte seeds) and encodes it: the bytes to append. */
export function signAndEncodeLink(link: Link, secretKeys: readonly Uint8Array[]): Uint8Array {
  return encodeSignedLink(signLink(link, secretKeys));
}
