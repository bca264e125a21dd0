import type { Base64Url32 } from './link.js';

/** The group key an account last declared: what the devices' group signatures are checked against. */
export interface DeclaredGroupKey {
  epoch: number;
  groupKey: string;
  deviceListHash: Base64Url32;
}

/** What every state of a registered account records. */
interface AccountStateCommon {
  /** The account's keyed hash, as every link of the chain names it. */
  account: Base64Url32;
  /** The seq of the last link. */
  seq: number;
  /** The hash of the last signed link: the `prev` the next link must carry. */
  head: Base64Url32;
  /** The last link's time (Unix ms); the next link's may not be earlier. */
  time: number;
  /** The last link's seen checkpoint size; the next link's must be larger. */
  seenSize: number;
  /** The identity key that registered the account; fixed for the account's life. */
  identityKey: Base64Url32;
  /** The latest group key, kept across transfers so an epoch can never go back. */
  group: DeclaredGroupKey | null;
}

/** A device is primary: it declares group keys, transfers, deregisters. */
export interface PrimaryState extends AccountStateCommon {
  status: 'primary';
  primaryKey: Base64Url32;
}

/** The primary deregistered itself: only a register-primary signed by the same identity key, or a tombstone, may follow. */
export interface DeregisteredState extends AccountStateCommon {
  status: 'deregistered';
}

/** The account destroyed itself: final, nothing may follow. */
export interface TombstonedState extends AccountStateCommon {
  status: 'tombstoned';
}

/** An account's registry after its chain so far; a discriminated union, so what each state allows is typed. */
export type AccountState = PrimaryState | DeregisteredState | TombstonedState;
