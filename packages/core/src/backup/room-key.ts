import { fromBase64 } from '../encoding.js';

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

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && Object.values(value).every((v) => typeof v === 'string');
}
