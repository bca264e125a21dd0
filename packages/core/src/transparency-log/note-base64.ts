import { fromBase64, toBase64 } from '../encoding.js';

/**
 * The C2SP formats (note signatures, checkpoint roots, keys, proof lines) write bytes in standard
 * padded base64 (RFC 4648 §4). Only the one canonical spelling is accepted, so that a note, a checkpoint
 * or a witness request cannot be re-encoded into a second valid form of itself.
 */
export function decodeNoteBase64(text: string): Uint8Array | undefined {
  try {
    const bytes = fromBase64(text);
    return toBase64(bytes, true) === text ? bytes : undefined;
  } catch {
    return undefined;
  }
}

export function encodeNoteBase64(bytes: Uint8Array): string {
  return toBase64(bytes, true);
}
