import { fromBase64 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { type SessionIdRefusal, sessionIdRefusal } from '../matrix/megolm-session.js';

/**
 * A Megolm room key as apps hold it and as key export files carry it (spec `ExportedSessionData`):
 * the backup plaintext plus the room and session it belongs to.
 */
export interface RoomKey {
  algorithm: 'm.megolm.v1.aes-sha2';
  room_id: string;
  session_id: string;
  sender_key: string;
  /** Unpadded base64 of the 165-byte session export: 0x01 ‖ u32 index ‖ ratchet (128) ‖ Ed25519 key (32). */
  session_key: string;
  sender_claimed_keys: Record<string, string>;
  forwarding_curve25519_key_chain: string[];
  'm.shared_history'?: boolean;
  /**
   * Fields this SDK does not know (another client's extension, a later spec version's field), kept as
   * they came through the keystore, export files and the backup: decoders ignore unknown fields (spec),
   * so dropping them on the way through would lose another client's data for good.
   */
  [field: string]: unknown;
}

/** The fields read and written by name; every other field of a plaintext is carried as it is. */
const KNOWN_FIELDS = new Set([
  'algorithm',
  'room_id',
  'session_id',
  'sender_key',
  'session_key',
  'sender_claimed_keys',
  'forwarding_curve25519_key_chain',
  // The history flag under its three names (reference §1.6): read from any, written as m.shared_history.
  'm.shared_history',
  'shared_history',
  'org.matrix.msc3061.shared_history',
]);

/**
 * The fields of `json` that are not known, as own data properties. Object.entries/fromEntries copy
 * even a field named `__proto__` as data, never as the object's prototype.
 */
function unknownFieldsOf(json: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(json).filter(([field]) => !KNOWN_FIELDS.has(field)));
}

/** Facts the app knows about a key beyond its bytes, used to rank it in the backup. */
export interface RoomKeyMeta {
  /** True when the key came from a device the user verified. */
  verified?: boolean;
  /** How many times the key was forwarded before it reached us. */
  forwardedCount?: number;
}

/** The message index the key starts at: bytes 1–4 of the session export (big-endian). */
export function firstKnownIndex(sessionKey: string): number {
  const bytes = fromBase64(sessionKey, 'session_key');
  if (bytes.length < 5 || bytes[0] !== 0x01) return 0;
  return new DataView(bytes.buffer, bytes.byteOffset, 5).getUint32(1);
}

/**
 * The backup plaintext of a key, in matrix-rust-sdk's field order (`BackedUpRoomKey`), without
 * room_id and session_id, which the backup's map position carries; then the fields we do not know.
 */
export function toBackupPlaintext(key: RoomKey): string {
  return JSON.stringify({
    algorithm: key.algorithm,
    sender_key: key.sender_key,
    session_key: key.session_key,
    sender_claimed_keys: key.sender_claimed_keys,
    forwarding_curve25519_key_chain: key.forwarding_curve25519_key_chain,
    ...(key['m.shared_history'] === undefined ? {} : { 'm.shared_history': key['m.shared_history'] }),
    ...unknownFieldsOf(key),
  });
}

/**
 * Reads a decrypted backup plaintext (or an export entry) into a RoomKey. Field order does not matter
 * (the plaintext is not canonical JSON); unknown fields are kept, after the known ones; the history
 * flag is read under all three names in use and written as `m.shared_history` (reference §1.6).
 */
export function roomKeyFromPlaintext(
  roomId: string,
  sessionId: string,
  json: Record<string, unknown>,
): RoomKey | undefined {
  const { sender_key, session_key, sender_claimed_keys, forwarding_curve25519_key_chain, algorithm } = json;
  if (algorithm !== 'm.megolm.v1.aes-sha2' || typeof sender_key !== 'string' || typeof session_key !== 'string') {
    return undefined;
  }
  const history = json['m.shared_history'] ?? json.shared_history ?? json['org.matrix.msc3061.shared_history'];
  return {
    algorithm,
    room_id: roomId,
    session_id: sessionId,
    sender_key,
    session_key,
    sender_claimed_keys: isStringRecord(sender_claimed_keys) ? sender_claimed_keys : {},
    forwarding_curve25519_key_chain: Array.isArray(forwarding_curve25519_key_chain)
      ? forwarding_curve25519_key_chain.filter((k): k is string => typeof k === 'string')
      : [],
    ...(typeof history === 'boolean' ? { 'm.shared_history': history } : {}),
    ...unknownFieldsOf(json),
  };
}

/**
 * Why a backed-up key was refused (`details.reason` of `LK_BACKUP_KEY_REFUSED`): its session_key is not
 * an exported Megolm session; its session id is not the Ed25519 key inside its session_key; or the
 * plaintext names another room or session than the one it is filed under.
 */
export type BackupRefusal = SessionIdRefusal | 'room-id-mismatch';

function refuse(reason: BackupRefusal, why: string): never {
  throw new LatchkeyError('LK_BACKUP_KEY_REFUSED', `A backed-up room key was refused: ${why}.`, { reason });
}

/**
 * Reads a decrypted backup entry filed under `roomId`/`sessionId` into a RoomKey, or refuses it
 * (`LK_BACKUP_KEY_REFUSED`, `details.reason` a {@link BackupRefusal}); undefined when it is not a Megolm
 * key at all. The labels come from the server unauthenticated, and the format's MAC covers nothing, so
 * whoever holds the backup public key (the server does) can write entries that decrypt: the key must
 * name itself. Its session id is its Ed25519 public key (spec "m.megolm.v1.aes-sha2"), and a plaintext
 * that carries room_id or session_id (matrix-js-sdk's and ours before the Matrix field order did) must
 * carry the ones it is filed under. A refused key is never imported.
 */
export function roomKeyFromBackup(
  roomId: string,
  sessionId: string,
  json: Record<string, unknown>,
): RoomKey | undefined {
  const key = roomKeyFromPlaintext(roomId, sessionId, json);
  if (key === undefined) return undefined;
  const notItsOwn = sessionIdRefusal(sessionId, key.session_key);
  if (notItsOwn === 'session-key-invalid') refuse(notItsOwn, 'its session_key is not an exported Megolm session');
  if (notItsOwn === 'session-id-mismatch')
    refuse(notItsOwn, `it is filed under session ${sessionId}, but its key is another's`);
  if (Object.hasOwn(json, 'session_id') && json.session_id !== sessionId) {
    refuse('session-id-mismatch', `it is filed under session ${sessionId}, but its plaintext names another`);
  }
  if (Object.hasOwn(json, 'room_id') && json.room_id !== roomId) {
    refuse('room-id-mismatch', `it is filed under room ${roomId}, but its plaintext names another room`);
  }
  return key;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && Object.values(value).every((v) => typeof v === 'string');
}
