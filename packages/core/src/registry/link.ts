/**
 * The per-account registry chain (issue 10): what a link is. A link is
 * `{version, account, seq, prev, type, body, seen, time}`, encoded as RFC 8785 canonical JSON
 * (canonical-json.ts says why), and carried in the log as a signed link `{link, sigs}`. Byte fields
 * are unpadded base64url, checked canonical; numbers are safe integers only.
 */

/** The only link version this code knows; a link of another version is refused, not guessed at. */
export const REGISTRY_LINK_VERSION = 1;

/**
 * What `prev` must be at seq 0, where there is no previous link: 32 zero bytes rather than an absent
 * field, so every link has one shape.
 */
export const GENESIS_PREV = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

/** Domain separation of the hash of a signed link, which the next link's `prev` holds. */
export const LINK_HASH_DOMAIN = 'latchkey/registry/link/v1\n';
/** Domain separation of what every signer of a link signs: this prefix, then the link's encoding. */
export const LINK_SIGNATURE_DOMAIN = 'latchkey/registry/link-signature/v1\n';

/**
 * The largest encoded signed link accepted. C2SP tlog-tiles entry bundles prefix each entry with a
 * uint16 length, so a leaf must stay below 64 KiB; 16 KiB leaves room for a group key of 8 KiB.
 */
export const MAX_SIGNED_LINK_BYTES = 16 * 1024;
/** The largest group public key a declare-group-key link carries (opaque here; BBS04's is far smaller). */
export const MAX_GROUP_KEY_BYTES = 8 * 1024;

/** The five transitions of an account's registry. */
export const LINK_TYPES = [
  'register-primary',
  'declare-group-key',
  'transfer-primary',
  'deregister-primary',
  'tombstone',
] as const;
/** One of {@link LINK_TYPES}. */
export type LinkType = (typeof LINK_TYPES)[number];

/** Unpadded base64url of exactly 32 bytes (an Ed25519 public key, a hash, the account's keyed hash). */
export type Base64Url32 = string;

/** The account's identity key and its first (or next) primary device's key, both Ed25519 public keys. */
export interface RegisterPrimaryBody {
  identityKey: Base64Url32;
  primaryKey: Base64Url32;
}

/**
 * A new group key. `groupKey` is the group public key's bytes (BBS04's, opaque to the chain);
 * `deviceListHash` commits to the device list that only the devices hold, so the log never shows
 * which devices exist.
 */
export interface DeclareGroupKeyBody {
  epoch: number;
  groupKey: string;
  deviceListHash: Base64Url32;
}

/** The key of the device that becomes primary. */
export interface TransferPrimaryBody {
  newPrimaryKey: Base64Url32;
}

/** deregister-primary and tombstone say everything by their type, so their body is `{}`. */
export type EmptyBody = Record<string, never>;

/** The body each link type carries. */
export interface LinkBodies {
  'register-primary': RegisterPrimaryBody;
  'declare-group-key': DeclareGroupKeyBody;
  'transfer-primary': TransferPrimaryBody;
  'deregister-primary': EmptyBody;
  tombstone: EmptyBody;
}

/**
 * The checkpoint the link's signer last verified: the log's size and root hash (RFC 6962 MTH), so a link
 * carries proof of what its author was shown. A signer must have verified the previous link's inclusion
 * before writing the next, so each link's `seen.size` is larger than the previous link's (chain.ts).
 */
export interface SeenCheckpoint {
  size: number;
  root: Base64Url32;
}

interface LinkOf<T extends LinkType> {
  version: typeof REGISTRY_LINK_VERSION;
  /** The log's keyed hash of the account (32 bytes): the public log shows that something happened, not to whom. */
  account: Base64Url32;
  /** 0 for the first link, then each link one more than the one before. */
  seq: number;
  /** The hash of the previous signed link ({@link LINK_HASH_DOMAIN}); {@link GENESIS_PREV} at seq 0. */
  prev: Base64Url32;
  type: T;
  body: LinkBodies[T];
  seen: SeenCheckpoint;
  /** When the signer made the link, in Unix milliseconds; never earlier than the link before. */
  time: number;
}

/** One link, before signing: a union over the types, so `body` narrows with `type`. */
export type Link = { [T in LinkType]: LinkOf<T> }[LinkType];

/** One signature on a link: the signer's Ed25519 public key and its signature, base64url. */
export interface LinkSignature {
  key: Base64Url32;
  sig: string;
}

/**
 * A link with its signatures, the unit the log stores (one leaf per signed link). `sigs` is sorted by
 * key with no key twice, so a signed link too has one encoding.
 */
export interface SignedLink {
  link: Link;
  sigs: LinkSignature[];
}
