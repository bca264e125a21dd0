import {
  applyLink,
  createLink,
  encodeCanonicalJson,
  GENESIS_PREV,
  type LinkContent,
  linkHash,
  signAndEncodeLink,
  toBase64Url,
  verifyChain,
} from '@latchkey/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ACCOUNT,
  declare,
  fullLife,
  jsonOf,
  KEYS,
  lifeUpTo,
  publicKey,
  secretKey,
  seen,
  T0,
} from './chain-fixtures.js';

/**
 * Properties of the chain rules (conventions §6): every chain a well-behaved client can write verifies
 * to the state a simple model predicts, and no single-byte change to any link of a chain gets through.
 */

const DEVICES = [0, 1, 2, 3].map((i) => secretKey(`property device ${i}`));
const DEVICE_KEYS = DEVICES.map((d) => toBase64Url(publicKey(d)));

/** The model: what the chain should say after the links written so far. */
interface Model {
  status: 'primary' | 'deregistered' | 'tombstoned';
  primary: number; // index into DEVICES while status is 'primary'
  epoch: number;
}

/** One step a client may take, chosen by `pick` among the steps the model allows now. */
function step(
  model: Model,
  pick: number,
  epochGap: number,
): { content: LinkContent; signers: Uint8Array[]; next: Model } {
  const identity = publicKey(KEYS.identity);
  const other = (model.primary + 1 + (pick % (DEVICES.length - 1))) % DEVICES.length;
  if (model.status === 'deregistered') {
    const device = pick % DEVICES.length;
    if (pick % 5 === 4)
      return { content: { type: 'tombstone' }, signers: [KEYS.identity], next: { ...model, status: 'tombstoned' } };
    return {
      content: {
        type: 'register-primary',
        identityKey: identity,
        primaryKey: publicKey(DEVICES[device] as Uint8Array),
      },
      signers: [KEYS.identity, DEVICES[device] as Uint8Array],
      next: { ...model, status: 'primary', primary: device },
    };
  }
  const primary = DEVICES[model.primary] as Uint8Array;
  switch (pick % 8) {
    case 0:
    case 1:
    case 2:
      return {
        content: declare(model.epoch + epochGap),
        signers: [primary],
        next: { ...model, epoch: model.epoch + epochGap },
      };
    case 3:
    case 4:
      return {
        content: { type: 'transfer-primary', newPrimaryKey: publicKey(DEVICES[other] as Uint8Array) },
        signers: [primary, DEVICES[other] as Uint8Array],
        next: { ...model, primary: other },
      };
    case 5:
    case 6:
      return {
        content: { type: 'deregister-primary' },
        signers: [primary],
        next: { ...model, status: 'deregistered' },
      };
    default:
      return {
        content: { type: 'tombstone' },
        signers: pick % 2 === 0 ? [primary] : [KEYS.identity],
        next: { ...model, status: 'tombstoned' },
      };
  }
}

const stepsArbitrary = fc.array(
  fc.record({
    pick: fc.nat(1000),
    epochGap: fc.integer({ min: 1, max: 3 }),
    timeGap: fc.nat(100_000),
    seenGap: fc.integer({ min: 1, max: 50 }),
  }),
  { maxLength: 10 },
);

/** Writes a chain as a client would: register, then the chosen steps until a tombstone. */
function writeChain(steps: { pick: number; epochGap: number; timeGap: number; seenGap: number }[]) {
  const first = DEVICES[0] as Uint8Array;
  const register = createLink(
    { account: ACCOUNT, seq: 0, seen: seen(0), time: T0 },
    { type: 'register-primary', identityKey: publicKey(KEYS.identity), primaryKey: publicKey(first) },
  );
  const links = [signAndEncodeLink(register, [KEYS.identity, first])];
  let model: Model = { status: 'primary', primary: 0, epoch: 0 };
  let time = T0;
  let seenSize = 0;
  for (const { pick, epochGap, timeGap, seenGap } of steps) {
    if (model.status === 'tombstoned') break;
    const { content, signers, next } = step(model, pick, epochGap);
    time += timeGap;
    seenSize += seenGap;
    const prev = linkHash(links[links.length - 1] as Uint8Array);
    const link = createLink({ account: ACCOUNT, seq: links.length, prev, seen: seen(seenSize), time }, content);
    links.push(signAndEncodeLink(link, signers));
    model = next;
  }
  return { links, model };
}

describe('chain properties', () => {
  it('every chain a well-behaved client writes verifies, to the state the model predicts', () => {
    fc.assert(
      fc.property(stepsArbitrary, (steps) => {
        const { links, model } = writeChain(steps);
        const result = verifyChain(links);
        if (!result.ok) expect.fail(`${result.code} at ${result.at}: ${result.message}`);
        expect(result.state.status).toBe(model.status);
        expect(result.state.seq).toBe(links.length - 1);
        expect(result.state.group?.epoch ?? 0).toBe(model.epoch);
        if (result.state.status === 'primary') expect(result.state.primaryKey).toBe(DEVICE_KEYS[model.primary]);
      }),
      { numRuns: 40 },
    );
  });

  it('any single-byte change to any link of a chain is refused, at that link', () => {
    const { links } = fullLife();
    // The state before each link, so each run checks the one changed link as verifyChain would reach it.
    const before = links.map((_, i) => (i === 0 ? null : lifeUpTo(i - 1).state));
    const position = fc.nat(links.length - 1).chain((index) =>
      fc.record({
        index: fc.constant(index),
        offset: fc.nat((links[index] as Uint8Array).length - 1),
        flip: fc.integer({ min: 1, max: 255 }),
      }),
    );
    fc.assert(
      fc.property(position, ({ index, offset, flip }) => {
        const tampered = (links[index] as Uint8Array).slice();
        tampered[offset] = (tampered[offset] as number) ^ flip;
        expect(applyLink(before[index] ?? null, tampered)).toMatchObject({ ok: false, at: index });
      }),
      { numRuns: 1000 },
    );
    // And through verifyChain, once per link: the change is caught at that link, not later.
    for (const [index, bytes] of links.entries()) {
      const changed = bytes.slice();
      changed[bytes.length - 20] = (changed[bytes.length - 20] as number) ^ 1;
      const tampered = links.map((b, i) => (i === index ? changed : b));
      expect(verifyChain(tampered)).toMatchObject({ ok: false, at: index });
    }
  });

  it('hostile bytes and hostile JSON are refused with a code, never thrown', () => {
    const chain = fullLife();
    const hostile = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.jsonValue().map((value) => encodeCanonicalJson(value)),
      fc.jsonValue().map((body) => {
        const json = jsonOf(chain.links[1] as Uint8Array);
        json.link['body'] = body;
        return encodeCanonicalJson(json);
      }),
    );
    fc.assert(
      fc.property(hostile, (bytes) => {
        for (const state of [null, chain.state]) {
          const result = applyLink(state, bytes);
          expect(result.ok).toBe(false);
          if (!result.ok) expect(result.code).toMatch(/^LK_REGISTRY_/);
        }
      }),
    );
  });

  it('the all-zero prev of seq 0 is 32 zero bytes', () => {
    expect(GENESIS_PREV).toBe(toBase64Url(new Uint8Array(32)));
  });
});
