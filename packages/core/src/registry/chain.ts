import { type ErrorCode, LatchkeyError } from '../errors.js';
import type { AccountState, PrimaryState } from './account-state.js';
import { GENESIS_PREV, type Link, type SignedLink } from './link.js';
import { decodeSignedLink, linkHashBase64Url } from './link-encoding.js';
import { signersOf, verifyLinkSignatures } from './link-signatures.js';

/**
 * The registry chain's state machine (issue 10): each link is a transition of an account's
 * {@link AccountState}. The server runs {@link applyLink} before it appends, and every client runs
 * {@link verifyChain} after it reads, with the same rules, so what one accepts the other accepts.
 *
 * Who must sign each link (every signature must verify; a signer with no role is refused):
 * - register-primary: the identity key named in the body and the new primary device (its countersignature).
 *   Only as the first link, or after a deregister-primary with the identity key the account began with.
 * - declare-group-key: the current primary; the epoch must exceed every epoch declared before.
 * - transfer-primary: the current primary and the new primary (its countersignature).
 * - deregister-primary: the current primary.
 * - tombstone: the identity key or the current primary (either or both); nothing may follow it.
 * Every link: seq one more than the last, prev the last link's hash, time not earlier, seen larger.
 */

/** The codes of registry chain failures. */
export type RegistryErrorCode = Extract<ErrorCode, `LK_REGISTRY_${string}`>;

/** A chain or link refused: the code, the position of the offending link (its expected seq), and why. */
export interface RegistryFailure {
  ok: false;
  code: RegistryErrorCode;
  at: number;
  message: string;
}

/** One link accepted (with the state after it and the link decoded), or refused. */
export type ApplyLinkResult = { ok: true; state: AccountState; link: SignedLink } | RegistryFailure;
/** A whole chain accepted (with the account's state after its last link), or refused at its first bad link. */
export type VerifyChainResult = { ok: true; state: AccountState } | RegistryFailure;

/** What the caller knows beyond the chain itself; each option only adds a check. */
export interface ChainOptions {
  /** The account (its keyed hash, base64url) the chain must belong to. */
  account?: string;
  /** The identity key the caller knows the account has (a client pins it); a chain registered under another is refused. */
  identityKey?: string;
  /** Now, in Unix ms: a link stamped later than `now + maxClockSkewMs` is refused (the server sets it). */
  now?: number;
  /** The clock difference tolerated with `now`; 5 minutes unless set. */
  maxClockSkewMs?: number;
}

const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60_000;

function refuse(code: RegistryErrorCode, message: string): LatchkeyError {
  return new LatchkeyError(code, message);
}

/** Refuses the link if the key is not among its signers. */
function requireSigner(signers: Set<string>, key: string, code: RegistryErrorCode, message: string): void {
  if (!signers.has(key)) throw refuse(code, message);
}

/** Refuses a signature by anyone the link type does not call for, so a link carries no stray signer. */
function refuseOtherSigners(signers: Set<string>, allowed: readonly string[]): void {
  for (const key of signers) {
    if (!allowed.includes(key)) {
      throw refuse('LK_REGISTRY_BAD_LINK', `Malformed registry link: key ${key} signed it but has no role in it.`);
    }
  }
}

function requirePrimary(state: AccountState | null, signers: Set<string>, type: string): PrimaryState {
  if (state?.status !== 'primary') {
    throw refuse('LK_REGISTRY_NOT_PRIMARY', `A ${type} link needs a primary device, and this account has none.`);
  }
  requireSigner(
    signers,
    state.primaryKey,
    'LK_REGISTRY_NOT_PRIMARY',
    `A ${type} link must be signed by the current primary device (${state.primaryKey}).`,
  );
  return state;
}

/** Where the chain stands after `link`, before the type-specific transition; the group key carries over. */
function advance(state: AccountState | null, link: Link, head: string) {
  const { account, seq, time } = link;
  return { account, seq, head, time, seenSize: link.seen.size, group: state?.group ?? null };
}

const NOT_SIGNED_BY_IDENTITY = "This register-primary link is not signed by the account's identity key.";

function registerPrimary(
  state: AccountState | null,
  link: Extract<Link, { type: 'register-primary' }>,
  signers: Set<string>,
  head: string,
  options: ChainOptions,
): AccountState {
  const { identityKey, primaryKey } = link.body;
  const knownIdentity = state?.identityKey ?? options.identityKey;
  if (knownIdentity !== undefined && identityKey !== knownIdentity) {
    throw refuse('LK_REGISTRY_NOT_IDENTITY', "This register-primary names an identity key that is not the account's.");
  }
  requireSigner(signers, identityKey, 'LK_REGISTRY_NOT_IDENTITY', NOT_SIGNED_BY_IDENTITY);
  requireSigner(
    signers,
    primaryKey,
    'LK_REGISTRY_MISSING_COUNTERSIGNATURE',
    'The new primary device has not countersigned the register-primary link that names its key.',
  );
  refuseOtherSigners(signers, [identityKey, primaryKey]);
  return { ...advance(state, link, head), identityKey, status: 'primary', primaryKey };
}

function declareGroupKey(
  state: AccountState | null,
  link: Extract<Link, { type: 'declare-group-key' }>,
  signers: Set<string>,
  head: string,
): AccountState {
  const primary = requirePrimary(state, signers, link.type);
  refuseOtherSigners(signers, [primary.primaryKey]);
  const current = primary.group?.epoch ?? 0;
  if (link.body.epoch <= current) {
    throw refuse(
      'LK_REGISTRY_STALE_EPOCH',
      `Group-key epoch ${link.body.epoch} is not greater than the current epoch ${current}.`,
    );
  }
  return { ...primary, ...advance(primary, link, head), group: { ...link.body } };
}

function transferPrimary(
  state: AccountState | null,
  link: Extract<Link, { type: 'transfer-primary' }>,
  signers: Set<string>,
  head: string,
): AccountState {
  const primary = requirePrimary(state, signers, link.type);
  const { newPrimaryKey } = link.body;
  if (newPrimaryKey === primary.primaryKey || newPrimaryKey === primary.identityKey) {
    throw refuse(
      'LK_REGISTRY_BAD_LINK',
      'Malformed registry link: a transfer-primary must name a new key, neither the primary nor the identity key.',
    );
  }
  requireSigner(
    signers,
    newPrimaryKey,
    'LK_REGISTRY_MISSING_COUNTERSIGNATURE',
    'The new primary device has not countersigned the transfer-primary link that names its key.',
  );
  refuseOtherSigners(signers, [primary.primaryKey, newPrimaryKey]);
  return { ...primary, ...advance(primary, link, head), primaryKey: newPrimaryKey };
}

function deregisterPrimary(
  state: AccountState | null,
  link: Extract<Link, { type: 'deregister-primary' }>,
  signers: Set<string>,
  head: string,
): AccountState {
  const primary = requirePrimary(state, signers, link.type);
  refuseOtherSigners(signers, [primary.primaryKey]);
  const { primaryKey: _dropped, ...rest } = primary;
  return { ...rest, ...advance(primary, link, head), status: 'deregistered' };
}

function tombstone(
  state: AccountState,
  link: Extract<Link, { type: 'tombstone' }>,
  signers: Set<string>,
  head: string,
): AccountState {
  const allowed = state.status === 'primary' ? [state.identityKey, state.primaryKey] : [state.identityKey];
  if (!allowed.some((key) => signers.has(key))) {
    throw refuse(
      'LK_REGISTRY_NOT_PRIMARY',
      "A tombstone must be signed by the account's identity key or its current primary device.",
    );
  }
  refuseOtherSigners(signers, allowed);
  const { identityKey, group } = state;
  return { ...advance(state, link, head), identityKey, group, status: 'tombstoned' };
}

/** Where the first link must stand: seq 0, the all-zero prev, and a register-primary. */
function checkFirstPlace(link: Link): void {
  if (link.seq !== 0) throw refuse('LK_REGISTRY_OUT_OF_ORDER', `The first link has seq ${link.seq}, not 0.`);
  if (link.prev !== GENESIS_PREV) {
    throw refuse('LK_REGISTRY_PREV_MISMATCH', 'The first link has a prev other than zero.');
  }
  if (link.type !== 'register-primary') {
    throw refuse('LK_REGISTRY_NOT_REGISTERED', `The first link is a ${link.type}, not a register-primary.`);
  }
}

/** Whether the chain may grow at all, and whether this register-primary comes too late. */
function checkOpen(state: AccountState, link: Link): void {
  if (state.status === 'tombstoned') {
    throw refuse(
      'LK_REGISTRY_TOMBSTONED',
      `The account was tombstoned at seq ${state.seq}; link ${link.seq} follows it.`,
    );
  }
  // The loser of a race of two first devices learns why in one code (both links claimed seq 0).
  if (link.type === 'register-primary' && state.status === 'primary') {
    throw refuse('LK_REGISTRY_ALREADY_REGISTERED', 'This account already has a primary device.');
  }
}

/** Where a later link must stand: right after the last link, hashing to it, not earlier, having seen more. */
function checkNextPlace(state: AccountState, link: Link): void {
  if (link.seq <= state.seq) {
    throw refuse(
      'LK_REGISTRY_REPLAYED',
      `Link seq ${link.seq} is already in the chain (its last seq is ${state.seq}).`,
    );
  }
  if (link.seq !== state.seq + 1) {
    throw refuse('LK_REGISTRY_OUT_OF_ORDER', `Link seq ${link.seq} follows seq ${state.seq}: links are missing.`);
  }
  if (link.prev !== state.head) {
    throw refuse('LK_REGISTRY_PREV_MISMATCH', `Link ${link.seq}'s prev is not the hash of link ${state.seq}.`);
  }
  if (link.time < state.time) {
    throw refuse('LK_REGISTRY_BAD_TIME', `Link ${link.seq} is dated before link ${state.seq}.`);
  }
  // The signer must have verified the previous link's inclusion, in a tree larger than the one that
  // link's own signer had seen (that link sits at an index at least that size).
  if (link.seen.size <= state.seenSize) {
    throw refuse(
      'LK_REGISTRY_STALE_SEEN',
      `Link ${link.seq} was signed having seen a log of ${link.seen.size} entries; it needs more than ${state.seenSize}.`,
    );
  }
}

/** The rules every link obeys whatever its type: account, finality, position, prev, time, seen. */
function checkPlace(state: AccountState | null, link: Link, options: ChainOptions): void {
  const account = state?.account ?? options.account;
  if (account !== undefined && link.account !== account) {
    throw refuse(
      'LK_REGISTRY_WRONG_ACCOUNT',
      `Registry link ${link.seq} names account ${link.account}, not ${account}.`,
    );
  }
  if (state === null) {
    checkFirstPlace(link);
  } else {
    checkOpen(state, link);
    checkNextPlace(state, link);
  }
  if (options.now !== undefined && link.time > options.now + (options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS)) {
    throw refuse('LK_REGISTRY_BAD_TIME', `Link ${link.seq} is dated in the future.`);
  }
}

function transition(state: AccountState | null, signed: SignedLink, head: string, options: ChainOptions): AccountState {
  const signers = signersOf(signed);
  const { link } = signed;
  switch (link.type) {
    case 'register-primary':
      return registerPrimary(state, link, signers, head, options);
    case 'declare-group-key':
      return declareGroupKey(state, link, signers, head);
    case 'transfer-primary':
      return transferPrimary(state, link, signers, head);
    case 'deregister-primary':
      return deregisterPrimary(state, link, signers, head);
    case 'tombstone':
      // checkPlace refuses a tombstone as a first link, so a state exists here.
      return tombstone(state as AccountState, link, signers, head);
  }
}

function isRegistryError(error: unknown): error is LatchkeyError & { code: RegistryErrorCode } {
  return error instanceof LatchkeyError && error.code.startsWith('LK_REGISTRY_');
}

/**
 * Checks one signed link (its bytes, as appended or as read from the log) against the account's
 * current state (`null` before the first link) and returns the next state, or the failure with its
 * `LK_REGISTRY_*` code. Nothing is changed on failure: states are values.
 */
export function applyLink(state: AccountState | null, bytes: Uint8Array, options: ChainOptions = {}): ApplyLinkResult {
  const at = state === null ? 0 : state.seq + 1;
  try {
    const signed = decodeSignedLink(bytes);
    checkPlace(state, signed.link, options);
    verifyLinkSignatures(signed);
    return { ok: true, state: transition(state, signed, linkHashBase64Url(bytes), options), link: signed };
  } catch (error) {
    if (isRegistryError(error)) return { ok: false, code: error.code, at, message: error.message };
    throw error;
  }
}

/**
 * Verifies an account's whole chain, in order from seq 0, and returns its state, or the first failure
 * with the position of the link at fault. An empty chain is `LK_REGISTRY_NOT_REGISTERED`.
 */
export function verifyChain(links: readonly Uint8Array[], options: ChainOptions = {}): VerifyChainResult {
  if (links.length === 0) {
    return { ok: false, code: 'LK_REGISTRY_NOT_REGISTERED', at: 0, message: 'The registry has no links.' };
  }
  let state: AccountState | null = null;
  for (const [index, bytes] of links.entries()) {
    const result = applyLink(state, bytes, options);
    if (!result.ok) return { ...result, at: index };
    state = result.state;
  }
  return { ok: true, state: state as AccountState };
}

/** A failure as a throwable {@link LatchkeyError}, for callers that answer with errors (the server, the SDK). */
export function registryFailureError(failure: RegistryFailure): LatchkeyError {
  return new LatchkeyError(failure.code, failure.message, { at: failure.at });
}
