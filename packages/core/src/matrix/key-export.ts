import { constantTimeEqual } from '../crypto/primitives.js';
import { concatBytes, fromBase64, fromUtf8, toBase64, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { aesCtr64, type MatrixCrypto } from './matrix-crypto.js';
import { clearBit63, MAX_PBKDF2_ITERATIONS } from './secret-storage.js';

/**
 * Megolm key export files (spec "Key exports"):
 *
 *   body = 0x01 ‖ salt (16) ‖ iv (16) ‖ rounds (u32 BE) ‖ AES-256-CTR(K, iv, JSON) ‖ HMAC-SHA256(K′, all before)
 *   K ‖ K′ = PBKDF2-HMAC-SHA-512(passphrase, salt, rounds, 64)
 *
 * CTR uses WebCrypto's 64-bit counter, as Element Web does (element-web's vector 4 needs it).
 */
export const EXPORT_HEADER = '-----BEGIN MEGOLM SESSION DATA-----';
export const EXPORT_FOOTER = '-----END MEGOLM SESSION DATA-----';
export const DEFAULT_EXPORT_ROUNDS = 500_000;
const VERSION = 0x01;
const MIN_BODY = 1 + 16 + 16 + 4 + 32;

export interface ExportParameters {
  salt: Uint8Array;
  iv: Uint8Array;
  rounds: number;
}

async function deriveExportKeys(crypto: MatrixCrypto, passphrase: string, salt: Uint8Array, rounds: number) {
  const keys = await crypto.pbkdf2Sha512(utf8(passphrase), salt, rounds, 64);
  return { aesKey: keys.subarray(0, 32), macKey: keys.subarray(32, 64) };
}

/**
 * Encrypts a key export's plaintext (normally the JSON array of sessions) into the armoured file text,
 * written as Element Web writes it: padded base64, 128-character lines, a trailing newline.
 * `iv` bit 63 is cleared here, as every encryptor must.
 */
export async function encryptKeyExport(
  crypto: MatrixCrypto,
  plaintext: Uint8Array,
  passphrase: string,
  params: ExportParameters,
): Promise<string> {
  if (params.salt.length !== 16 || params.iv.length !== 16) throw new RangeError('salt and iv are 16 bytes');
  return armour(await encryptKeyExportBody(crypto, plaintext, passphrase, { ...params, iv: clearBit63(params.iv) }));
}

/** The binary body with exactly the given parameters (no bit clearing): what the vectors pin down. */
export async function encryptKeyExportBody(
  crypto: MatrixCrypto,
  plaintext: Uint8Array,
  passphrase: string,
  { salt, iv, rounds }: ExportParameters,
): Promise<Uint8Array> {
  checkRounds(rounds);
  const { aesKey, macKey } = await deriveExportKeys(crypto, passphrase, salt, rounds);
  const header = new Uint8Array(37);
  header[0] = VERSION;
  header.set(salt, 1);
  header.set(iv, 17);
  new DataView(header.buffer).setUint32(33, rounds);
  const signed = concatBytes(header, aesCtr64(crypto, aesKey, iv, plaintext));
  return concatBytes(signed, crypto.hmacSha256(macKey, signed));
}

/** Decrypts an armoured export. Malformed files are `LK_KEY_EXPORT_INVALID`; a wrong passphrase is `LK_KEY_EXPORT_BAD_PASSPHRASE`. */
export async function decryptKeyExport(
  crypto: MatrixCrypto,
  fileText: string,
  passphrase: string,
): Promise<Uint8Array> {
  const body = unarmour(fileText);
  if (body.length < MIN_BODY) throw invalid('the body is too short');
  if (body[0] !== VERSION) throw invalid(`unsupported version ${body[0]}`);
  const rounds = new DataView(body.buffer, body.byteOffset).getUint32(33);
  checkRounds(rounds);
  const { aesKey, macKey } = await deriveExportKeys(crypto, passphrase, body.subarray(1, 17), rounds);
  const signedEnd = body.length - 32;
  if (!constantTimeEqual(crypto.hmacSha256(macKey, body.subarray(0, signedEnd)), body.subarray(signedEnd))) {
    throw new LatchkeyError('LK_KEY_EXPORT_BAD_PASSPHRASE');
  }
  return aesCtr64(crypto, aesKey, body.subarray(17, 33), body.subarray(37, signedEnd));
}

/** Convenience: decrypts and parses the JSON array a key export holds. */
export async function readKeyExport(crypto: MatrixCrypto, fileText: string, passphrase: string): Promise<unknown[]> {
  const plaintext = await decryptKeyExport(crypto, fileText, passphrase);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(plaintext));
  } catch {
    throw invalid('the decrypted content is not JSON');
  }
  if (!Array.isArray(parsed)) throw invalid('the decrypted content is not a JSON array');
  return parsed;
}

function checkRounds(rounds: number): void {
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_PBKDF2_ITERATIONS) {
    throw invalid(`PBKDF2 rounds must be 1…${MAX_PBKDF2_ITERATIONS} (got ${rounds})`);
  }
}

function invalid(why: string): LatchkeyError {
  return new LatchkeyError('LK_KEY_EXPORT_INVALID', `Not a usable key export file: ${why}.`);
}

const LINE_BYTES = 96; // 128 base64 characters per line, as Element Web writes

export function armour(body: Uint8Array): string {
  const lines = [EXPORT_HEADER];
  for (let i = 0; i < body.length; i += LINE_BYTES) lines.push(toBase64(body.subarray(i, i + LINE_BYTES), true));
  lines.push(EXPORT_FOOTER, '');
  return lines.join('\n');
}

/**
 * Finds the header and footer lines (compared trimmed, as Element does), joins what lies between,
 * strips ASCII whitespace, and decodes base64 padded or not.
 */
export function unarmour(text: string): Uint8Array {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((line) => line.trim() === EXPORT_HEADER);
  const end = lines.findIndex((line, i) => i > start && line.trim() === EXPORT_FOOTER);
  if (start < 0) throw invalid('no BEGIN MEGOLM SESSION DATA line');
  if (end < 0) throw invalid('no END MEGOLM SESSION DATA line');
  const base64 = lines
    .slice(start + 1, end)
    .join('')
    .replace(/[ \t\r\n\f\v]/g, '');
  try {
    return fromBase64(base64, 'body');
  } catch {
    throw invalid('the body is not base64');
  }
}
