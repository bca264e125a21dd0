import {
  advanceRatchet,
  fromBase64,
  isEarlierCopyOfSession,
  parseExportedSession,
  type RoomKey,
  roomKeyFromBackup,
  sessionIdOf,
  toBackupPlaintext,
  toBase64,
} from '@latchkey/core';
import * as wasm from '@matrix-org/matrix-sdk-crypto-wasm';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { latchkeyErrorOf } from '../../../test/support/errors.js';

/**
 * Megolm session keys on real bytes: sessions made by matrix-sdk-crypto-wasm (vodozemac inside), and
 * messages it encrypted, decrypted by a second wasm machine from a key whose ratchet we advanced. A
 * backed-up key must name itself (issue 8): the refusals are made from those genuine keys.
 */

const ROOM = '!room:example.org';
/** Messages the session encrypts: across the first turn of the second ratchet part (index 256). */
const MESSAGES = 260;

interface Genuine {
  key: RoomKey;
  /** Each message as the room event a homeserver would deliver, by its Megolm index. */
  events: string[];
}

let genuine: Genuine;
let other: RoomKey;

/** A fresh wasm device's own session in ROOM (it holds it from index 0), and `messages` events under it. */
async function makeSession(device: string, messages: number): Promise<Genuine> {
  const machine = await wasm.OlmMachine.initialize(
    new wasm.UserId(`@${device}:example.org`),
    new wasm.DeviceId(device),
  );
  const settings = new wasm.EncryptionSettings();
  // The default rotates the session after 100 messages; these must all be under one.
  settings.rotationPeriodMessages = BigInt(messages + 1);
  await machine.shareRoomKey(new wasm.RoomId(ROOM), [], settings);
  const events: string[] = [];
  for (let i = 0; i < messages; i++) {
    const content = await machine.encryptRoomEvent(
      new wasm.RoomId(ROOM),
      'm.room.message',
      JSON.stringify({ msgtype: 'm.text', body: `message ${i}` }),
    );
    events.push(
      JSON.stringify({
        type: 'm.room.encrypted',
        sender: `@${device}:example.org`,
        event_id: `$${device}-${i}`,
        origin_server_ts: 1_700_000_000_000 + i,
        room_id: ROOM,
        content: JSON.parse(content),
      }),
    );
  }
  const [key] = JSON.parse(await machine.exportRoomKeys(() => true)) as RoomKey[];
  machine.close();
  return { key: key as RoomKey, events };
}

/** The session key starting at `to`, made from one starting earlier by advancing its ratchet. */
function startingAt(sessionKey: string, to: number): string {
  const { firstIndex, ratchet } = parseExportedSession(sessionKey);
  const bytes = fromBase64(sessionKey).slice();
  bytes.set(advanceRatchet(ratchet, firstIndex, to), 5);
  new DataView(bytes.buffer).setUint32(1, to);
  return toBase64(bytes);
}

/** The body wasm decrypts from `event` holding only `key`, or the error's name. */
async function decryptWith(key: RoomKey, event: string): Promise<string> {
  const machine = await wasm.OlmMachine.initialize(new wasm.UserId('@reader:example.org'), new wasm.DeviceId('READER'));
  try {
    await machine.importExportedRoomKeys(JSON.stringify([key]), () => {});
    const decrypted = await machine.decryptRoomEvent(
      event,
      new wasm.RoomId(ROOM),
      new wasm.DecryptionSettings(wasm.TrustRequirement.Untrusted),
    );
    return (JSON.parse(decrypted.event) as { content: { body: string } }).content.body;
  } catch (error) {
    return `failed: ${(error as Error).name}`;
  } finally {
    machine.close();
  }
}

beforeAll(async () => {
  await wasm.initAsync();
  genuine = await makeSession('ALICE', MESSAGES);
  other = (await makeSession('BOB', 0)).key;
});

describe('an exported Megolm session key', () => {
  it("names its own session: the session id is the Ed25519 key inside it, as vodozemac's export says", () => {
    for (const key of [genuine.key, other]) {
      expect(sessionIdOf(key.session_key)).toBe(key.session_id);
      const parsed = parseExportedSession(key.session_key);
      expect(parsed.firstIndex).toBe(0);
      expect(parsed.ratchet).toHaveLength(128);
      expect(toBase64(parsed.signingKey)).toBe(key.session_id);
    }
  });

  it('anything but the 165-byte version-1 export is LK_SESSION_KEY_INVALID', () => {
    const bytes = fromBase64(genuine.key.session_key);
    const signed = new Uint8Array(229); // vodozemac's SessionKey (version 2, signed): not an export
    signed.set(bytes);
    signed[0] = 0x02;
    const versionTwo = bytes.slice();
    versionTwo[0] = 0x02;
    for (const bad of [
      toBase64(bytes.subarray(0, 164)),
      toBase64(Uint8Array.of(...bytes, 0)),
      toBase64(versionTwo),
      toBase64(signed),
      '',
      'not base64!',
      `${genuine.key.session_key}A`,
    ]) {
      expect(latchkeyErrorOf(() => parseExportedSession(bad)).code, bad).toBe('LK_SESSION_KEY_INVALID');
    }
  });
});

describe('advancing the ratchet (libolm megolm_advance_to)', () => {
  it.each([
    [0, 1],
    [0, 2],
    [0, 255],
    [0, 256],
    [0, 259],
    [3, 257],
    [255, 256],
  ])('a key advanced from %i to %i decrypts message %i with vodozemac, and not the one before', async (from, to) => {
    const start = { ...genuine.key, session_key: startingAt(genuine.key.session_key, from) };
    const advanced = { ...genuine.key, session_key: startingAt(start.session_key, to) };
    expect(parseExportedSession(advanced.session_key).firstIndex).toBe(to);
    expect(await decryptWith(advanced, genuine.events[to] as string)).toBe(`message ${to}`);
    expect(await decryptWith(advanced, genuine.events[to - 1] as string)).toMatch(/^failed/);
  });

  it('in steps or at once, the same ratchet (any u32 indexes, each part turning over)', () => {
    const ratchet = parseExportedSession(genuine.key.session_key).ratchet;
    const index = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(
      fc.property(index, index, index, (x, y, z) => {
        const [a, b, c] = [x, y, z].sort((p, q) => p - q) as [number, number, number];
        const start = advanceRatchet(ratchet, 0, a);
        expect(advanceRatchet(advanceRatchet(start, a, b), b, c)).toEqual(advanceRatchet(start, a, c));
      }),
      { numRuns: 30 },
    );
  });

  it('never goes back', () => {
    const ratchet = parseExportedSession(genuine.key.session_key).ratchet;
    expect(() => advanceRatchet(ratchet, 5, 4)).toThrow(RangeError);
    expect(advanceRatchet(ratchet, 7, 7)).toEqual(ratchet);
  });
});

describe('an earlier copy of the same session', () => {
  const later = (index: number) => startingAt(genuine.key.session_key, index);

  it('is connected: same key, lower index, a ratchet that advances to the held one', () => {
    expect(isEarlierCopyOfSession(genuine.key.session_key, later(10))).toBe(true);
    expect(isEarlierCopyOfSession(later(3), later(300))).toBe(true);
  });

  it('a later copy, the same copy, or another session is not', () => {
    expect(isEarlierCopyOfSession(later(10), genuine.key.session_key)).toBe(false);
    expect(isEarlierCopyOfSession(later(10), later(10))).toBe(false);
    expect(isEarlierCopyOfSession(other.session_key, later(10))).toBe(false);
  });

  it("a forgery claiming the session's key with a ratchet of its own is not, at any lower index", () => {
    const held = later(10);
    for (const index of [0, 9]) {
      const forged = fromBase64(held).slice();
      forged.set(globalThis.crypto.getRandomValues(new Uint8Array(128)), 5);
      new DataView(forged.buffer).setUint32(1, index);
      expect(sessionIdOf(toBase64(forged))).toBe(genuine.key.session_id);
      expect(isEarlierCopyOfSession(toBase64(forged), held)).toBe(false);
    }
    expect(isEarlierCopyOfSession('not a key', held)).toBe(false);
  });
});

describe('a backed-up key must name itself (roomKeyFromBackup)', () => {
  const plaintextOf = (key: RoomKey, extra: Record<string, unknown> = {}) => ({
    ...(JSON.parse(toBackupPlaintext(key)) as Record<string, unknown>),
    ...extra,
  });
  const reasonOf = (roomId: string, sessionId: string, json: Record<string, unknown>) => {
    const error = latchkeyErrorOf(() => roomKeyFromBackup(roomId, sessionId, json));
    expect(error.code).toBe('LK_BACKUP_KEY_REFUSED');
    return error.details?.reason;
  };

  it('a genuine key under its own room and session is read as it is, with or without ids in its plaintext', () => {
    const { key } = genuine;
    expect(roomKeyFromBackup(ROOM, key.session_id, plaintextOf(key))).toEqual(key);
    const withIds = plaintextOf(key, { room_id: ROOM, session_id: key.session_id });
    expect(roomKeyFromBackup(ROOM, key.session_id, withIds)).toEqual(key);
  });

  it("filed under another session's id: refused, session-id-mismatch", () => {
    expect(reasonOf(ROOM, other.session_id, plaintextOf(genuine.key))).toBe('session-id-mismatch');
    // A padded or truncated spelling of its own id is another id too.
    expect(reasonOf(ROOM, `${genuine.key.session_id}=`, plaintextOf(genuine.key))).toBe('session-id-mismatch');
  });

  it('a plaintext naming another room or session than its labels: refused', () => {
    const { key } = genuine;
    expect(reasonOf(ROOM, key.session_id, plaintextOf(key, { room_id: '!elsewhere:example.org' }))).toBe(
      'room-id-mismatch',
    );
    expect(reasonOf(ROOM, key.session_id, plaintextOf(key, { room_id: null }))).toBe('room-id-mismatch');
    expect(reasonOf(ROOM, key.session_id, plaintextOf(key, { session_id: other.session_id }))).toBe(
      'session-id-mismatch',
    );
  });

  it('a session_key that is no exported session: refused, session-key-invalid; not a Megolm key at all: undefined', () => {
    const { key } = genuine;
    const short = toBase64(fromBase64(key.session_key).subarray(0, 100));
    expect(reasonOf(ROOM, key.session_id, plaintextOf(key, { session_key: short }))).toBe('session-key-invalid');
    expect(roomKeyFromBackup(ROOM, key.session_id, plaintextOf(key, { algorithm: 'm.other' }))).toBeUndefined();
  });
});
