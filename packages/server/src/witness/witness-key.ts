import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cosignatureSigner,
  formatCosignatureVerifierKey,
  formatKeyId,
  fromBase64,
  isValidKeyName,
  LatchkeyError,
  NOTE_TYPE_COSIGNATURE,
  type NoteSigner,
  noteKeyId,
  toBase64,
} from '@latchkey/core';

/** The witness's key file in its data directory. */
export const WITNESS_KEY_FILE = 'witness.key';

/** A witness's identity: its name and Ed25519 key, as one file holds them. */
export interface WitnessKey {
  readonly name: string;
  /** The cosigner vkey (`<name>+<id>+<base64(0x04 || public key)>`) that logs and clients configure. */
  readonly vkey: string;
  /** Where the key lives. */
  readonly file: string;
  /** A cosigner dated `time` (POSIX seconds): each cosignature carries the time it was made. */
  signerAt(time: number): NoteSigner;
}

function invalid(message: string, file: string): LatchkeyError {
  return new LatchkeyError('LK_CONFIG_INVALID', message, { file });
}

/**
 * Loads the witness key from `dataDir`, creating it on first start when `name` is given. The name is
 * part of the key (its key ID hashes it, and logs configure the vkey), so it is kept in the file
 * beside the seed: a later start with another `name` is refused rather than silently changing identity.
 * The file is `PRIVATE+KEY+<name>+<8 hex id>+<base64(0x04 || 32-byte seed)>`, golang.org/x/mod's signer
 * key format with the cosignature type (0x04) in place of 0x01; mode 0600 in a 0700 directory.
 */
export function loadOrCreateWitnessKey(dataDir: string, name?: string): WitnessKey {
  const file = join(dataDir, WITNESS_KEY_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (!exists(file)) {
    if (name === undefined) {
      throw invalid(
        `No witness key in ${dataDir} yet: name the witness (for example --name witness.example.org) to create one.`,
        file,
      );
    }
    createKeyFile(file, name);
  }
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const key = parseKeyFile(readFileSync(file, 'utf8'), file);
  if (name !== undefined && name !== key.name) {
    throw invalid(
      `The witness key in ${file} is named "${key.name}", not "${name}": the name is part of the witness's ` +
        'public key, so it cannot change. Drop --name, or use another data directory for a new witness.',
      file,
    );
  }
  return key;
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Writes a fresh key whole under a temporary name, then links it into place: link() fails if the file
 * exists, so of two witnesses starting at once one key wins and neither reads a half-written file.
 */
function createKeyFile(file: string, name: string): void {
  if (!isValidKeyName(name)) {
    throw invalid(`"${name}" is not a valid witness name: no spaces, no "+", no control characters.`, file);
  }
  const seed = new Uint8Array(randomBytes(32));
  const publicKey = ed25519PublicKey(seed);
  const id = formatKeyId(noteKeyId(name, NOTE_TYPE_COSIGNATURE, publicKey));
  const encoded = toBase64(Uint8Array.of(NOTE_TYPE_COSIGNATURE, ...seed), true);
  seed.fill(0);
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temporary, `PRIVATE+KEY+${name}+${id}+${encoded}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(temporary);
  }
}

function parseKeyFile(text: string, file: string): WitnessKey {
  const unusable = () =>
    invalid(`${file} is not a witness key: expected one line PRIVATE+KEY+<name>+<id>+<base64(0x04 || seed)>.`, file);
  const match = /^PRIVATE\+KEY\+([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)\n?$/.exec(text);
  if (match === null) throw unusable();
  const [, name, idHex, encoded] = match as unknown as [string, string, string, string];
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(encoded);
  } catch {
    throw unusable();
  }
  if (bytes.length !== 33 || bytes[0] !== NOTE_TYPE_COSIGNATURE || !isValidKeyName(name)) throw unusable();
  const seed = bytes.slice(1);
  const publicKey = ed25519PublicKey(seed);
  if (formatKeyId(noteKeyId(name, NOTE_TYPE_COSIGNATURE, publicKey)) !== idHex) {
    throw invalid(`The key ID in ${file} does not match its name and key: the file was altered.`, file);
  }
  return {
    name,
    vkey: formatCosignatureVerifierKey(name, publicKey),
    file,
    signerAt: (time) => cosignatureSigner(name, seed, time),
  };
}

/** RFC 8410's PKCS #8 header for a bare Ed25519 seed, so Node derives the public key. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}
