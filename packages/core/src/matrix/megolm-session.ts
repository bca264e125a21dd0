import { constantTimeEqual, hmacSha256 } from '../crypto/primitives.js';
import { fromBase64, toBase64 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';

/**
 * A Megolm session as a key export or a backup carries it (vodozemac `ExportedSessionKey`; libolm
 * `olm_export_inbound_group_session`): version 0x01 ‖ message index (u32, big-endian) ‖ ratchet
 * (four 32-byte parts, 128 bytes) ‖ the session's Ed25519 public key (32 bytes), 165 bytes in all.
 * The session id is that public key, unpadded base64 (spec "m.megolm.v1.aes-sha2").
 */
export interface ExportedSession {
  firstIndex: number;
  ratchet: Uint8Array;
  signingKey: Uint8Array;
}

const EXPORT_VERSION = 0x01;
const RATCHET_PART = 32;
const RATCHET_PARTS = 4;
const RATCHET_LENGTH = RATCHET_PART * RATCHET_PARTS;
const EXPORT_LENGTH = 1 + 4 + RATCHET_LENGTH + 32;

/** Reads an exported session key; anything else (another version, length, or not base64) is `LK_SESSION_KEY_INVALID`. */
export function parseExportedSession(sessionKey: string): ExportedSession {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(sessionKey, 'session_key');
  } catch {
    throw new LatchkeyError('LK_SESSION_KEY_INVALID', 'session_key is not canonical base64.');
  }
  if (bytes.length !== EXPORT_LENGTH || bytes[0] !== EXPORT_VERSION) {
    throw new LatchkeyError(
      'LK_SESSION_KEY_INVALID',
      `session_key is not an exported Megolm session (version 1, ${EXPORT_LENGTH} bytes).`,
    );
  }
  return {
    firstIndex: new DataView(bytes.buffer, bytes.byteOffset, 5).getUint32(1),
    ratchet: bytes.slice(5, 5 + RATCHET_LENGTH),
    signingKey: bytes.slice(5 + RATCHET_LENGTH),
  };
}

/** The session id a session key belongs to: its Ed25519 public key, unpadded base64. */
export function sessionIdOf(sessionKey: string): string {
  return toBase64(parseExportedSession(sessionKey).signingKey);
}

/**
 * Why a room key does not name itself (`details.reason` of `LK_ROOM_KEY_REFUSED`, and of a backup's
 * `LK_BACKUP_KEY_REFUSED`): its session_key is not an exported Megolm session, or it is one of another
 * session than its session id says.
 */
export type SessionIdRefusal = 'session-key-invalid' | 'session-id-mismatch';

/**
 * Undefined when `sessionId` is the session `sessionKey` belongs to, else why not. The label comes with
 * the key from whoever wrote it (an export file, a backup, another device); the key names itself.
 */
export function sessionIdRefusal(sessionId: string, sessionKey: string): SessionIdRefusal | undefined {
  let own: string;
  try {
    own = sessionIdOf(sessionKey);
  } catch {
    return 'session-key-invalid';
  }
  return own === sessionId ? undefined : 'session-id-mismatch';
}

/**
 * Refuses a room key labelled with a session id that is not its own: `LK_ROOM_KEY_REFUSED`, with
 * `details.reason` (a {@link SessionIdRefusal}) and the room and session it claimed. Under another
 * session's label, a key that starts earlier would outrank and replace the one held for that session.
 */
export function checkRoomKeySession(key: { room_id: string; session_id: string; session_key: string }): void {
  const reason = sessionIdRefusal(key.session_id, key.session_key);
  if (reason === undefined) return;
  throw new LatchkeyError(
    'LK_ROOM_KEY_REFUSED',
    reason === 'session-key-invalid'
      ? `The room key for session ${key.session_id} was refused: its session_key is not an exported Megolm session.`
      : `The room key labelled session ${key.session_id} was refused: its session_key is another session's.`,
    { reason, room_id: key.room_id, session_id: key.session_id },
  );
}

/** Seeds of the four parts' HMACs (libolm megolm.c `HASH_KEY_SEEDS`; vodozemac `ratchet.rs`). */
const SEEDS = [0, 1, 2, 3].map((seed) => Uint8Array.of(seed));

/**
 * The ratchet at `from` advanced to `to` (libolm `megolm_advance_to`): part j turns once every 2^(8·(3−j))
 * messages; turning it rehashes itself, then resets every lower part from it (R(k) = HMAC(R(j), k)).
 * Only forward: a ratchet cannot go back, which is what makes a later index decrypt less history.
 */
export function advanceRatchet(ratchet: Uint8Array, from: number, to: number): Uint8Array {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > 0xffffffff || to < from) {
    throw new RangeError('a Megolm ratchet only advances, within u32');
  }
  const parts: Uint8Array[] = [0, 1, 2, 3].map((j) => ratchet.slice(j * RATCHET_PART, (j + 1) * RATCHET_PART));
  let counter = from;
  for (let j = 0; j < RATCHET_PARTS; j++) {
    const shift = (RATCHET_PARTS - j - 1) * 8;
    let steps = ((to >>> shift) - (counter >>> shift)) & 0xff;
    if (steps === 0) continue;
    for (; steps > 1; steps--) parts[j] = hmacSha256(parts[j] as Uint8Array, SEEDS[j] as Uint8Array);
    // The last turn of part j also resets the parts below it, from its value before this turn.
    const source = parts[j] as Uint8Array;
    for (let k = RATCHET_PARTS - 1; k >= j; k--) parts[k] = hmacSha256(source, SEEDS[k] as Uint8Array);
    counter = Math.floor(to / 2 ** shift) * 2 ** shift; // `to & mask`, kept unsigned
  }
  const out = new Uint8Array(RATCHET_LENGTH);
  for (const [j, part] of parts.entries()) out.set(part, j * RATCHET_PART);
  return out;
}

/**
 * True when `candidate` is the same Megolm session as `held` and starts earlier: the same Ed25519 key,
 * a lower first index, and its ratchet advanced to `held`'s index is `held`'s ratchet (vodozemac
 * `InboundGroupSession::compare`, "connected"). Only then does it decrypt everything `held` does and
 * more; a copy that merely claims the session id, with a ratchet of its own, is not connected.
 */
export function isEarlierCopyOfSession(candidate: string, held: string): boolean {
  let a: ExportedSession;
  let b: ExportedSession;
  try {
    a = parseExportedSession(candidate);
    b = parseExportedSession(held);
  } catch {
    return false;
  }
  if (!constantTimeEqual(a.signingKey, b.signingKey) || a.firstIndex >= b.firstIndex) return false;
  return constantTimeEqual(advanceRatchet(a.ratchet, a.firstIndex, b.firstIndex), b.ratchet);
}
