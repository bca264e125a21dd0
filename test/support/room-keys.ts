import type { RoomKey } from '@latchkey/client';
import { toBase64 } from '@latchkey/core';

const random = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));

/**
 * A well-formed Megolm room key (165-byte session export) with random key material. Its session id is
 * the Ed25519 key inside its session_key, as a real one's is: a restore refuses any other.
 * `sessionIndex` is kept for callers that number their keys; the random key makes each id unique.
 */
export function makeRoomKey(roomIndex: number, _sessionIndex: number, firstIndex = 0): RoomKey {
  const sessionKey = new Uint8Array(165);
  sessionKey[0] = 0x01;
  new DataView(sessionKey.buffer).setUint32(1, firstIndex);
  sessionKey.set(random(160), 5);
  return {
    algorithm: 'm.megolm.v1.aes-sha2',
    room_id: `!room${roomIndex}:example.org`,
    session_id: toBase64(sessionKey.subarray(133)),
    sender_key: toBase64(random(32)),
    session_key: toBase64(sessionKey),
    sender_claimed_keys: { ed25519: toBase64(random(32)) },
    forwarding_curve25519_key_chain: [],
  };
}

/** `count` keys spread over rooms of `perRoom` sessions each. */
export function makeRoomKeys(count: number, perRoom = 50): RoomKey[] {
  return Array.from({ length: count }, (_, i) => makeRoomKey(Math.floor(i / perRoom), i));
}
