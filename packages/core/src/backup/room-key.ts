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
 * room_id and session_id, which the backup's map position carries.
 */
export function toBackupPlaintext(key: RoomKey): string {
  return JSON.stringify({
    algorithm: key.algorithm,
    sender_key: key.sender_key,
    session_key: key.session_key,
    sender_claimed_keys: key.sender_claimed_keys,
    forwarding_curve25519_key_chain: key.forwarding_curve25519_key_chain,
    ...(key['m.shared_history'] === undefined ? {} : { 'm.shared_history': key['m.shared_history'] }),
  });
}

/**
 * Reads a decrypted backup plaintext (or an export entry) into a RoomKey. Field order and unknown
 * fields do not matter (the plaintext is not canonical JSON); the history flag is read under all
 * three names in use and written as `m.shared_history` (reference §1.6).
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
  };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && Object.values(value).every((v) => typeof v === 'string');
}
