import { LatchkeyError } from '../errors.js';
import type { KeyStretchingConfig } from '../protocol/accounts.js';

/**
 * Which OPAQUE key stretching a client accepts. The server advertises the Argon2id setting every client
 * must stretch the password with (`GET /v1/config`), and the OPAQUE record made at sign-up, password
 * change or reset is only as hard to crack offline as that setting: a server that advertises a weak
 * one (or anyone rewriting plain http) gets a record, and with it the wrapped kB, that is nearly free
 * to guess at. A huge one makes the client allocate and compute until it gives out. So the SDK checks
 * the advertised setting with {@link checkKeyStretching} before it stretches or sends anything.
 */

/** Argon2id's parameters: memory in KiB, passes, lanes (RFC 9106 §3.1). */
export interface Argon2idParameters {
  memory: number;
  iterations: number;
  parallelism: number;
}

/** The named presets of @serenity-kit/opaque, spelled out (RFC 9106 §4's two recommended options). */
export const KEY_STRETCHING_PRESETS = {
  /** RFC 9106 §4, first recommended option: 2 GiB, one pass, four lanes. */
  'rfc-recommended': { memory: 2 ** 21, iterations: 1, parallelism: 4 },
  /** RFC 9106 §4, second recommended option, for memory-constrained settings: 64 MiB, three passes. */
  'memory-constrained': { memory: 2 ** 16, iterations: 3, parallelism: 4 },
} as const satisfies Record<string, Argon2idParameters>;

/**
 * The weakest setting a client accepts unpinned: RFC 9106's second recommended option. "No weaker"
 * is measured in what an attacker must spend per guess, for a custom setting:
 * - memory at least 64 MiB: memory is what makes Argon2id costly on GPUs and ASICs (RFC 9106 §4), and
 *   no number of passes over a small buffer buys that back, so it has a floor of its own;
 * - memory × passes at least 64 MiB × 3: the total memory filled, i.e. the time per guess, so a
 *   larger buffer may take fewer passes (RFC 9106's first option, 2 GiB × 1, passes).
 * Lanes do not count: an attacker runs them in parallel anyway.
 */
export const KEY_STRETCHING_FLOOR = {
  memory: KEY_STRETCHING_PRESETS['memory-constrained'].memory,
  work: KEY_STRETCHING_PRESETS['memory-constrained'].memory * KEY_STRETCHING_PRESETS['memory-constrained'].iterations,
} as const;

/**
 * The costliest setting a client accepts unpinned, so a server cannot exhaust it:
 * - memory at most 2 GiB, RFC 9106's first option: it is the most either recommendation asks for,
 *   and the WebAssembly Argon2id of the SDK runs in a 32-bit heap, which a browser caps near there;
 * - memory × passes at most 2 × (2 GiB × 1): twice the costlier recommendation, seconds on a laptop
 *   and far more on a phone; beyond that a setting buys little against guessing and costs every login;
 * - at most 64 lanes: the WebAssembly build fills them one after another, so more lanes only add
 *   overhead, and no client has more cores to give them.
 */
export const KEY_STRETCHING_CEILING = {
  memory: KEY_STRETCHING_PRESETS['rfc-recommended'].memory,
  work: 2 * KEY_STRETCHING_PRESETS['rfc-recommended'].memory * KEY_STRETCHING_PRESETS['rfc-recommended'].iterations,
  parallelism: 64,
} as const;

/**
 * Argon2id's own upper bounds (RFC 9106 §3.1): memory and passes are 32-bit fields, lanes fewer than
 * 2^24. A setting past them is not a weak or costly one but none at all.
 */
const ARGON2ID_LIMITS = { memory: 2 ** 32 - 1, iterations: 2 ** 32 - 1, parallelism: 2 ** 24 - 1 } as const;

/**
 * The Argon2id parameters a setting stands for, or `undefined` when it is not a setting at all (an
 * unknown preset, a missing or non-integer field, or values Argon2id itself refuses: 1 ≤ t < 2^32,
 * 1 ≤ p < 2^24, 8 × p ≤ m < 2^32 KiB). Input may come straight off the network, so nothing about its
 * shape is assumed.
 */
export function argon2idParameters(config: unknown): Argon2idParameters | undefined {
  if (config === 'rfc-recommended' || config === 'memory-constrained') return KEY_STRETCHING_PRESETS[config];
  if (typeof config !== 'object' || config === null || Object.keys(config).length !== 1) return undefined;
  const custom: unknown = (config as Record<string, unknown>)['argon2id-custom'];
  if (typeof custom !== 'object' || custom === null || Object.keys(custom).length !== 3) return undefined;
  const { memory, iterations, parallelism } = custom as Record<string, unknown>;
  if (!isPositiveInteger(memory) || !isPositiveInteger(iterations) || !isPositiveInteger(parallelism)) {
    return undefined;
  }
  if (memory < 8 * parallelism) return undefined;
  if (
    memory > ARGON2ID_LIMITS.memory ||
    iterations > ARGON2ID_LIMITS.iterations ||
    parallelism > ARGON2ID_LIMITS.parallelism
  ) {
    return undefined;
  }
  return { memory, iterations, parallelism };
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/**
 * Checks the setting a server advertises, before the client stretches a password with it or sends
 * anything, and returns it typed. With `pinned` (the app's own choice), the advertised setting must
 * stand for exactly the pinned parameters (`LK_KDF_MISMATCH` otherwise) and the bounds do not apply:
 * the app chose it. Without a pin it must lie between {@link KEY_STRETCHING_FLOOR} and
 * {@link KEY_STRETCHING_CEILING}: `LK_KDF_TOO_WEAK`, `LK_KDF_TOO_COSTLY`; `LK_KDF_INVALID` when it is
 * not an Argon2id setting at all.
 *
 * The same check runs at login. There the floor protects nothing secret (a login under the wrong
 * setting opens no envelope and sends nothing, and a record made under a weak one is already weak),
 * but a server that switches settings at login would make the client stretch under parameters it
 * never agreed to, and the ceiling does protect the client; one rule for every use of the setting is
 * also the one that can be audited, and a clear code beats the `LK_LOGIN_FAILED` a mismatch would give.
 */
export function checkKeyStretching(advertised: unknown, pinned?: KeyStretchingConfig): KeyStretchingConfig {
  const parameters = argon2idParameters(advertised);
  if (parameters === undefined) throw new LatchkeyError('LK_KDF_INVALID');
  const setting = advertised as KeyStretchingConfig;
  if (pinned !== undefined) {
    const expected = argon2idParameters(pinned);
    if (expected === undefined) throw new LatchkeyError('LK_KDF_INVALID', 'The pinned key stretching is not valid.');
    if (!sameParameters(parameters, expected)) {
      throw new LatchkeyError('LK_KDF_MISMATCH', undefined, { advertised: parameters, expected });
    }
    return setting;
  }
  const work = parameters.memory * parameters.iterations;
  if (parameters.memory < KEY_STRETCHING_FLOOR.memory || work < KEY_STRETCHING_FLOOR.work) {
    throw new LatchkeyError('LK_KDF_TOO_WEAK', undefined, { advertised: parameters });
  }
  if (
    parameters.memory > KEY_STRETCHING_CEILING.memory ||
    work > KEY_STRETCHING_CEILING.work ||
    parameters.parallelism > KEY_STRETCHING_CEILING.parallelism
  ) {
    throw new LatchkeyError('LK_KDF_TOO_COSTLY', undefined, { advertised: parameters });
  }
  return setting;
}

/** A preset and the custom setting that spells it out make the same record, so they compare equal. */
function sameParameters(a: Argon2idParameters, b: Argon2idParameters): boolean {
  return a.memory === b.memory && a.iterations === b.iterations && a.parallelism === b.parallelism;
}

/**
 * Reads a setting as the server's `LATCHKEY_KEY_STRETCHING` spells it (`memory-constrained`,
 * `rfc-recommended` or `argon2id:m=65536,t=3,p=4`): the one reader of that spelling, for the server's
 * configuration and for an app or the CLI to pin, so each accepts exactly what the others do.
 * `LK_KDF_INVALID` when it is not one.
 */
export function parseKeyStretching(text: string): KeyStretchingConfig {
  if (text === 'memory-constrained' || text === 'rfc-recommended') return text;
  const match = /^argon2id:m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,8})$/.exec(text);
  const config = match && {
    'argon2id-custom': { memory: Number(match[1]), iterations: Number(match[2]), parallelism: Number(match[3]) },
  };
  if (config === null || argon2idParameters(config) === undefined) {
    throw new LatchkeyError(
      'LK_KDF_INVALID',
      `Not a key-stretching setting: ${JSON.stringify(text)} (memory-constrained, rfc-recommended or ` +
        'argon2id:m=…,t=…,p=… with 1 ≤ t < 2^32, 1 ≤ p < 2^24 and 8 × p ≤ m < 2^32 KiB).',
    );
  }
  return config;
}
