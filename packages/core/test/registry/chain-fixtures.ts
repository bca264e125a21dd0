import {
  type AccountState,
  applyLink,
  createLink,
  createNextLink,
  encodeCanonicalJson,
  fromUtf8,
  type LinkContent,
  signAndEncodeLink,
  toBase64Url,
  utf8,
} from '@latchkey/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { expect } from 'vitest';

/**
 * Keys and chains for the registry tests: real Ed25519 keys from fixed seeds, real links built with the
 * builders a client uses, checked with the same applyLink the server runs.
 */

/** A 32-byte Ed25519 secret key (seed) made from one label, so every run has the same keys. */
export function secretKey(label: string): Uint8Array {
  return sha256(utf8(`latchkey test key ${label}`));
}

export function publicKey(secret: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(secret);
}

export const KEYS = {
  identity: secretKey('identity'),
  deviceA: secretKey('device A'),
  deviceB: secretKey('device B'),
  deviceC: secretKey('device C'),
  attacker: secretKey('attacker'),
} as const;

/** The log's keyed hash of the test account (the server's key is not modelled here). */
export const ACCOUNT = sha256(utf8('the keyed hash of test account 1'));
export const OTHER_ACCOUNT = sha256(utf8('the keyed hash of test account 2'));

/** A checkpoint a signer saw: size `size`, some root. */
export function seen(size: number): { size: number; root: Uint8Array } {
  return { size, root: sha256(utf8(`root of a tree of size ${size}`)) };
}

export const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, in ms

/** A chain under construction: its encoded links and the state after the last one. */
export interface Chain {
  links: Uint8Array[];
  state: AccountState;
}

/** Applies a link that must be accepted, and returns the longer chain. */
export function accept(chain: Chain | null, bytes: Uint8Array): Chain {
  const result = applyLink(chain?.state ?? null, bytes);
  if (!result.ok) expect.fail(`a valid link was refused: ${result.code} ${result.message}`);
  return { links: [...(chain?.links ?? []), bytes], state: result.state };
}

/** The bytes of the first link: identity registers `primary`. */
export function registerBytes(primary: Uint8Array = KEYS.deviceA, signers = [KEYS.identity, primary]): Uint8Array {
  const link = createLink(
    { account: ACCOUNT, seq: 0, seen: seen(0), time: T0 },
    { type: 'register-primary', identityKey: publicKey(KEYS.identity), primaryKey: publicKey(primary) },
  );
  return signAndEncodeLink(link, signers);
}

/** The bytes of the link that follows `chain`, one second and one log entry later, signed by `signers`. */
export function nextBytes(chain: Chain, content: LinkContent, signers: Uint8Array[]): Uint8Array {
  const { seq, seenSize, time } = chain.state;
  const link = createNextLink(chain.state, { seen: seen(seenSize + 1 + seq), time: time + 1000 }, content);
  return signAndEncodeLink(link, signers);
}

export function declare(epoch: number): LinkContent {
  return {
    type: 'declare-group-key',
    epoch,
    groupKey: sha256(utf8(`group public key ${epoch}`)),
    deviceListHash: sha256(utf8(`device list ${epoch}`)),
  };
}

export function transfer(to: Uint8Array): LinkContent {
  return { type: 'transfer-primary', newPrimaryKey: publicKey(to) };
}

/**
 * A whole life: register A; declare epochs 1 and 2; transfer to B; declare 3; B deregisters; the
 * identity registers C; C declares 4; C tombstones the account.
 */
export function fullLife(): Chain {
  let chain = accept(null, registerBytes());
  chain = accept(chain, nextBytes(chain, declare(1), [KEYS.deviceA]));
  chain = accept(chain, nextBytes(chain, declare(2), [KEYS.deviceA]));
  chain = accept(chain, nextBytes(chain, transfer(KEYS.deviceB), [KEYS.deviceA, KEYS.deviceB]));
  chain = accept(chain, nextBytes(chain, declare(3), [KEYS.deviceB]));
  chain = accept(chain, nextBytes(chain, { type: 'deregister-primary' }, [KEYS.deviceB]));
  const reregister: LinkContent = {
    type: 'register-primary',
    identityKey: publicKey(KEYS.identity),
    primaryKey: publicKey(KEYS.deviceC),
  };
  chain = accept(chain, nextBytes(chain, reregister, [KEYS.identity, KEYS.deviceC]));
  chain = accept(chain, nextBytes(chain, declare(4), [KEYS.deviceC]));
  return accept(chain, nextBytes(chain, { type: 'tombstone' }, [KEYS.deviceC]));
}

/** The first links of {@link fullLife}, up to and including seq `lastSeq`. */
export function lifeUpTo(lastSeq: number): Chain {
  const life = fullLife();
  let chain: Chain | null = null;
  for (const bytes of life.links.slice(0, lastSeq + 1)) chain = accept(chain, bytes);
  return chain as Chain;
}

/** The parsed JSON of an encoded signed link, to rewrite the way a tampering server would. */
export function jsonOf(bytes: Uint8Array): { link: Record<string, unknown>; sigs: { key: string; sig: string }[] } {
  return JSON.parse(fromUtf8(bytes));
}

/** Re-encodes a rewritten signed link canonically (so only the rewrite, not the spelling, is at fault). */
export function encodeJson(value: unknown): Uint8Array {
  return encodeCanonicalJson(value);
}

export const b64 = toBase64Url;
