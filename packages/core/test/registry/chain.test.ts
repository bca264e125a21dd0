import {
  type AccountState,
  applyLink,
  createLink,
  createNextLink,
  decodeSignedLink,
  linkHashBase64Url,
  type RegistryErrorCode,
  signAndEncodeLink,
  toBase64Url,
  utf8,
  verifyChain,
} from '@latchkey/core';
import { describe, expect, it } from 'vitest';
import {
  ACCOUNT,
  accept,
  type Chain,
  declare,
  encodeJson,
  fullLife,
  jsonOf,
  KEYS,
  lifeUpTo,
  nextBytes,
  OTHER_ACCOUNT,
  publicKey,
  registerBytes,
  secretKey,
  seen,
  T0,
  transfer,
} from './chain-fixtures.js';

/**
 * The registry chain rules (issue 10, "The per-account chain" and the tampered-server attacks of "Must
 * show" that the chain itself catches). Every attack is one test that asserts its LK_REGISTRY_* code
 * and the position of the link at fault.
 */

function expectRefused(links: Uint8Array[], code: RegistryErrorCode, at: number): void {
  const result = verifyChain(links);
  expect(result).toMatchObject({ ok: false, code, at });
}

function expectAppendRefused(chain: Chain, bytes: Uint8Array, code: RegistryErrorCode): void {
  const before = structuredClone(chain.state);
  const result = applyLink(chain.state, bytes);
  expect(result).toMatchObject({ ok: false, code, at: chain.state.seq + 1 });
  // Nothing half-written: the state the caller holds is unchanged.
  expect(chain.state).toEqual(before);
}

describe('a full life verifies', () => {
  const life = fullLife();

  it('register, epochs 1 and 2, transfer, epoch 3, deregister, register again, epoch 4, tombstone', () => {
    const result = verifyChain(life.links);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const expected: AccountState = {
      status: 'tombstoned',
      account: toBase64Url(ACCOUNT),
      seq: 8,
      head: linkHashBase64Url(life.links[8] as Uint8Array),
      time: T0 + 8000,
      seenSize: life.state.seenSize,
      identityKey: toBase64Url(publicKey(KEYS.identity)),
      group: {
        epoch: 4,
        groupKey: toBase64Url(decodeGroupKey(life.links[7] as Uint8Array)),
        deviceListHash: (jsonOf(life.links[7] as Uint8Array).link['body'] as { deviceListHash: string }).deviceListHash,
      },
    };
    expect(result.state).toEqual(expected);
  });

  it('each prefix gives the state the server holds after that append', () => {
    const states = life.links.map((_, i) => verifyChain(life.links.slice(0, i + 1)));
    expect(states.map((r) => (r.ok ? r.state.status : r.code))).toEqual([
      'primary',
      'primary',
      'primary',
      'primary',
      'primary',
      'deregistered',
      'primary',
      'primary',
      'tombstoned',
    ]);
    const primaries = states.map((r) => (r.ok && r.state.status === 'primary' ? r.state.primaryKey : null));
    expect(primaries[2]).toBe(toBase64Url(publicKey(KEYS.deviceA)));
    expect(primaries[3]).toBe(toBase64Url(publicKey(KEYS.deviceB)));
    expect(primaries[6]).toBe(toBase64Url(publicKey(KEYS.deviceC)));
  });

  it('each prev is the hash of the link before, and seq 0 has the all-zero prev', () => {
    const prevs = life.links.map((bytes) => decodeSignedLink(bytes).link.prev);
    expect(prevs[0]).toBe(toBase64Url(new Uint8Array(32)));
    for (let i = 1; i < prevs.length; i++) expect(prevs[i]).toBe(linkHashBase64Url(life.links[i - 1] as Uint8Array));
  });

  it('a client pinning the account and its identity key accepts it', () => {
    const options = { account: toBase64Url(ACCOUNT), identityKey: toBase64Url(publicKey(KEYS.identity)) };
    expect(verifyChain(life.links, options).ok).toBe(true);
  });
});

function decodeGroupKey(bytes: Uint8Array): Uint8Array {
  const { groupKey } = decodeSignedLink(bytes).link.body as { groupKey: string };
  return Uint8Array.from(Buffer.from(groupKey, 'base64url'));
}

/** A link of `life` rewritten by a tampering server: `edit` changes its JSON; the signatures stay. */
function rewritten(bytes: Uint8Array, edit: (link: Record<string, unknown>) => void): Uint8Array {
  const json = jsonOf(bytes);
  edit(json.link);
  return encodeJson(json);
}

describe('a tampered chain is refused, with its code', () => {
  const life = fullLife();
  const links = life.links;

  it('a link rewritten (epoch changed, signatures kept): LK_REGISTRY_BAD_SIGNATURE', () => {
    const tampered = rewritten(links[2] as Uint8Array, (link) => {
      (link['body'] as { epoch: number }).epoch = 7;
    });
    expectRefused([...links.slice(0, 2), tampered, ...links.slice(3)], 'LK_REGISTRY_BAD_SIGNATURE', 2);
  });

  it('a link rewritten and re-signed by a key that is not the primary: LK_REGISTRY_NOT_PRIMARY', () => {
    const chain = lifeUpTo(1);
    for (const signer of [KEYS.attacker, KEYS.identity, KEYS.deviceB]) {
      const forged = nextBytes(chain, declare(2), [signer]);
      expectRefused([...chain.links, forged], 'LK_REGISTRY_NOT_PRIMARY', 2);
      expectAppendRefused(chain, forged, 'LK_REGISTRY_NOT_PRIMARY');
    }
  });

  it('a link removed from the middle: LK_REGISTRY_OUT_OF_ORDER', () => {
    expectRefused([...links.slice(0, 2), ...links.slice(3)], 'LK_REGISTRY_OUT_OF_ORDER', 2);
  });

  it('the first link removed: LK_REGISTRY_OUT_OF_ORDER', () => {
    expectRefused(links.slice(1), 'LK_REGISTRY_OUT_OF_ORDER', 0);
  });

  it('a link swapped for another one signed at the same seq (a fork inside the chain): LK_REGISTRY_PREV_MISMATCH', () => {
    const chain = lifeUpTo(1);
    const other = nextBytes(chain, declare(5), [KEYS.deviceA]);
    expectRefused([...links.slice(0, 2), other, ...links.slice(3)], 'LK_REGISTRY_PREV_MISMATCH', 3);
  });

  it('a replayed link, in the chain and as an append: LK_REGISTRY_REPLAYED', () => {
    expectRefused([...links.slice(0, 3), links[2] as Uint8Array, ...links.slice(3)], 'LK_REGISTRY_REPLAYED', 3);
    const chain = lifeUpTo(4);
    expectAppendRefused(chain, links[1] as Uint8Array, 'LK_REGISTRY_REPLAYED');
    expectAppendRefused(chain, links[4] as Uint8Array, 'LK_REGISTRY_REPLAYED');
  });

  it('an older or equal group-key epoch, signed by the primary: LK_REGISTRY_STALE_EPOCH', () => {
    const chain = lifeUpTo(2);
    for (const epoch of [1, 2]) {
      const stale = nextBytes(chain, declare(epoch), [KEYS.deviceA]);
      expectRefused([...chain.links, stale], 'LK_REGISTRY_STALE_EPOCH', 3);
      expectAppendRefused(chain, stale, 'LK_REGISTRY_STALE_EPOCH');
    }
  });

  it('an epoch cannot go back across a transfer either', () => {
    const chain = lifeUpTo(4); // B is primary at epoch 3
    expectAppendRefused(chain, nextBytes(chain, declare(3), [KEYS.deviceB]), 'LK_REGISTRY_STALE_EPOCH');
    expect(applyLink(chain.state, nextBytes(chain, declare(9), [KEYS.deviceB])).ok).toBe(true);
  });

  it('a forged signature (flipped bit, random bytes, another link’s signature): LK_REGISTRY_BAD_SIGNATURE', () => {
    const original = jsonOf(links[1] as Uint8Array);
    const sig = Buffer.from(original.sigs[0]?.sig as string, 'base64url');
    const forgeries = [
      Buffer.from(sig.map((b, i) => (i === 10 ? b ^ 1 : b))),
      Buffer.alloc(64, 7),
      Buffer.from(jsonOf(links[2] as Uint8Array).sigs[0]?.sig as string, 'base64url'),
    ];
    for (const forged of forgeries) {
      const json = jsonOf(links[1] as Uint8Array);
      (json.sigs[0] as { sig: string }).sig = forged.toString('base64url');
      expectRefused([links[0] as Uint8Array, encodeJson(json)], 'LK_REGISTRY_BAD_SIGNATURE', 1);
    }
  });

  it('a link after a tombstone: LK_REGISTRY_TOMBSTONED', () => {
    const afterTombstone = nextBytes(life, declare(5), [KEYS.deviceC]);
    expectRefused([...links, afterTombstone], 'LK_REGISTRY_TOMBSTONED', 9);
    expectAppendRefused(life, afterTombstone, 'LK_REGISTRY_TOMBSTONED');
    const reregister = nextBytes(
      life,
      { type: 'register-primary', identityKey: publicKey(KEYS.identity), primaryKey: publicKey(KEYS.deviceA) },
      [KEYS.identity, KEYS.deviceA],
    );
    expectAppendRefused(life, reregister, 'LK_REGISTRY_TOMBSTONED');
  });

  it('a register-primary without the device countersignature: LK_REGISTRY_MISSING_COUNTERSIGNATURE', () => {
    expectRefused([registerBytes(KEYS.deviceA, [KEYS.identity])], 'LK_REGISTRY_MISSING_COUNTERSIGNATURE', 0);
  });

  it('a register-primary countersigned by another device than the one it names: refused', () => {
    expectRefused(
      [registerBytes(KEYS.deviceA, [KEYS.identity, KEYS.deviceB])],
      'LK_REGISTRY_MISSING_COUNTERSIGNATURE',
      0,
    );
  });

  it('a register-primary without the identity key: LK_REGISTRY_NOT_IDENTITY', () => {
    expectRefused([registerBytes(KEYS.deviceA, [KEYS.deviceA])], 'LK_REGISTRY_NOT_IDENTITY', 0);
    expectRefused([registerBytes(KEYS.deviceA, [KEYS.attacker, KEYS.deviceA])], 'LK_REGISTRY_NOT_IDENTITY', 0);
  });

  it('a transfer-primary without the new primary’s signature: LK_REGISTRY_MISSING_COUNTERSIGNATURE', () => {
    const chain = lifeUpTo(2);
    const unsigned = nextBytes(chain, transfer(KEYS.deviceB), [KEYS.deviceA]);
    expectRefused([...chain.links, unsigned], 'LK_REGISTRY_MISSING_COUNTERSIGNATURE', 3);
    expectAppendRefused(chain, unsigned, 'LK_REGISTRY_MISSING_COUNTERSIGNATURE');
  });

  it('a transfer-primary signed by the new device alone (a takeover): LK_REGISTRY_NOT_PRIMARY', () => {
    const chain = lifeUpTo(2);
    expectAppendRefused(chain, nextBytes(chain, transfer(KEYS.attacker), [KEYS.attacker]), 'LK_REGISTRY_NOT_PRIMARY');
  });
});

describe('the other chain rules', () => {
  it('the first link must be a register-primary: LK_REGISTRY_NOT_REGISTERED', () => {
    const link = createLink({ account: ACCOUNT, seq: 0, seen: seen(0), time: T0 }, declare(1));
    expectRefused([signAndEncodeLink(link, [KEYS.deviceA])], 'LK_REGISTRY_NOT_REGISTERED', 0);
    expect(verifyChain([])).toMatchObject({ ok: false, code: 'LK_REGISTRY_NOT_REGISTERED', at: 0 });
  });

  it('the first link must have the all-zero prev: LK_REGISTRY_PREV_MISMATCH', () => {
    const link = createLink(
      { account: ACCOUNT, seq: 0, prev: new Uint8Array(32).fill(1), seen: seen(0), time: T0 },
      { type: 'register-primary', identityKey: publicKey(KEYS.identity), primaryKey: publicKey(KEYS.deviceA) },
    );
    expectRefused([signAndEncodeLink(link, [KEYS.identity, KEYS.deviceA])], 'LK_REGISTRY_PREV_MISMATCH', 0);
  });

  it('a race of 50 first devices has one winner; every other gets LK_REGISTRY_ALREADY_REGISTERED', () => {
    const contenders = Array.from({ length: 50 }, (_, i) => registerBytes(secretKey(`contender ${i}`)));
    // Each is a valid first link on its own: which one wins is the order the server commits them in.
    for (const bytes of contenders.slice(0, 3)) expect(applyLink(null, bytes).ok).toBe(true);
    const winner = accept(null, contenders[17] as Uint8Array);
    for (const bytes of contenders) {
      expectAppendRefused(winner, bytes, 'LK_REGISTRY_ALREADY_REGISTERED');
    }
  });

  it('a register-primary while a primary exists, even at the right place: LK_REGISTRY_ALREADY_REGISTERED', () => {
    const chain = lifeUpTo(1);
    const second = nextBytes(
      chain,
      { type: 'register-primary', identityKey: publicKey(KEYS.identity), primaryKey: publicKey(KEYS.deviceB) },
      [KEYS.identity, KEYS.deviceB],
    );
    expectAppendRefused(chain, second, 'LK_REGISTRY_ALREADY_REGISTERED');
  });

  it('after a deregister, only the same identity key registers again: LK_REGISTRY_NOT_IDENTITY', () => {
    const chain = lifeUpTo(5);
    const other = nextBytes(
      chain,
      { type: 'register-primary', identityKey: publicKey(KEYS.attacker), primaryKey: publicKey(KEYS.deviceC) },
      [KEYS.attacker, KEYS.deviceC],
    );
    expectAppendRefused(chain, other, 'LK_REGISTRY_NOT_IDENTITY');
  });

  it('after a deregister, no one is primary: LK_REGISTRY_NOT_PRIMARY', () => {
    const chain = lifeUpTo(5);
    expectAppendRefused(chain, nextBytes(chain, declare(9), [KEYS.deviceB]), 'LK_REGISTRY_NOT_PRIMARY');
    expectAppendRefused(
      chain,
      nextBytes(chain, { type: 'deregister-primary' }, [KEYS.deviceB]),
      'LK_REGISTRY_NOT_PRIMARY',
    );
  });

  it('a tombstone needs the identity key or the primary', () => {
    const chain = lifeUpTo(2);
    expectAppendRefused(chain, nextBytes(chain, { type: 'tombstone' }, [KEYS.deviceB]), 'LK_REGISTRY_NOT_PRIMARY');
    expect(applyLink(chain.state, nextBytes(chain, { type: 'tombstone' }, [KEYS.identity])).ok).toBe(true);
    expect(applyLink(chain.state, nextBytes(chain, { type: 'tombstone' }, [KEYS.deviceA])).ok).toBe(true);
    const deregistered = lifeUpTo(5);
    const byOldPrimary = nextBytes(deregistered, { type: 'tombstone' }, [KEYS.deviceB]);
    expectAppendRefused(deregistered, byOldPrimary, 'LK_REGISTRY_NOT_PRIMARY');
  });

  it('a signer with no role in the link: LK_REGISTRY_BAD_LINK', () => {
    const chain = lifeUpTo(1);
    expectAppendRefused(chain, nextBytes(chain, declare(2), [KEYS.deviceA, KEYS.attacker]), 'LK_REGISTRY_BAD_LINK');
  });

  it('a transfer to the primary itself or to the identity key: LK_REGISTRY_BAD_LINK', () => {
    const chain = lifeUpTo(1);
    expectAppendRefused(chain, nextBytes(chain, transfer(KEYS.deviceA), [KEYS.deviceA]), 'LK_REGISTRY_BAD_LINK');
    expectAppendRefused(
      chain,
      nextBytes(chain, transfer(KEYS.identity), [KEYS.deviceA, KEYS.identity]),
      'LK_REGISTRY_BAD_LINK',
    );
  });

  it('a link of another account spliced in: LK_REGISTRY_WRONG_ACCOUNT', () => {
    const chain = lifeUpTo(1);
    const link = createNextLink(chain.state, { seen: seen(10), time: T0 + 5000 }, declare(2));
    const spliced = signAndEncodeLink({ ...link, account: toBase64Url(OTHER_ACCOUNT) }, [KEYS.deviceA]);
    expectAppendRefused(chain, spliced, 'LK_REGISTRY_WRONG_ACCOUNT');
    expect(verifyChain(chain.links, { account: toBase64Url(OTHER_ACCOUNT) })).toMatchObject({
      ok: false,
      code: 'LK_REGISTRY_WRONG_ACCOUNT',
      at: 0,
    });
  });

  it('a client that knows its identity key refuses a chain registered under another: LK_REGISTRY_NOT_IDENTITY', () => {
    const result = verifyChain(fullLife().links, { identityKey: toBase64Url(publicKey(KEYS.attacker)) });
    expect(result).toMatchObject({ ok: false, code: 'LK_REGISTRY_NOT_IDENTITY', at: 0 });
  });

  it('time going back, or too far ahead of now: LK_REGISTRY_BAD_TIME', () => {
    const chain = lifeUpTo(1);
    const back = createNextLink(chain.state, { seen: seen(10), time: chain.state.time - 1 }, declare(2));
    expectAppendRefused(chain, signAndEncodeLink(back, [KEYS.deviceA]), 'LK_REGISTRY_BAD_TIME');
    const same = createNextLink(chain.state, { seen: seen(10), time: chain.state.time }, declare(2));
    expect(applyLink(chain.state, signAndEncodeLink(same, [KEYS.deviceA])).ok).toBe(true);
    const ahead = signAndEncodeLink(
      createNextLink(chain.state, { seen: seen(10), time: T0 + 60 * 60_000 }, declare(2)),
      [KEYS.deviceA],
    );
    expect(applyLink(chain.state, ahead, { now: T0 })).toMatchObject({ ok: false, code: 'LK_REGISTRY_BAD_TIME' });
    expect(applyLink(chain.state, ahead, { now: T0 + 56 * 60_000 }).ok).toBe(true);
  });

  it('a signer that had not seen a larger log than the previous link’s signer: LK_REGISTRY_STALE_SEEN', () => {
    const chain = lifeUpTo(1);
    for (const size of [0, chain.state.seenSize]) {
      const link = createNextLink(chain.state, { seen: seen(size), time: T0 + 5000 }, declare(2));
      expectAppendRefused(chain, signAndEncodeLink(link, [KEYS.deviceA]), 'LK_REGISTRY_STALE_SEEN');
    }
  });

  it('deeply nested JSON is refused as malformed, not a crash: LK_REGISTRY_BAD_LINK', () => {
    const depth = 8000;
    const nested = [
      utf8(`${'['.repeat(depth)}${']'.repeat(depth)}`),
      utf8(`{"link":${'{"a":'.repeat(depth / 6)}1${'}'.repeat(depth / 6)},"sigs":[]}`),
    ];
    for (const bytes of nested)
      expect(applyLink(null, bytes)).toMatchObject({ ok: false, code: 'LK_REGISTRY_BAD_LINK' });
  });

  it('an unknown version: LK_REGISTRY_UNKNOWN_VERSION', () => {
    const chain = lifeUpTo(1);
    const link = createNextLink(chain.state, { seen: seen(10), time: T0 + 5000 }, declare(2));
    const future = encodeJson({ link: { ...link, version: 2 }, sigs: jsonOf(chain.links[1] as Uint8Array).sigs });
    expectAppendRefused(chain, future, 'LK_REGISTRY_UNKNOWN_VERSION');
  });
});
