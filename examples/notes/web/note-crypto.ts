import { fromBase64Url, fromUtf8, LatchkeyError, type ScopedKeyJwk, toBase64Url, utf8 } from '@latchkey/core';

/**
 * The notes' encryption: AES-256-GCM under the app's scoped key (the JWK `k` Latchkey's consent page
 * derived from kB), with WebCrypto only, so it runs the same in the page and in Node 20.
 *
 * A stored note is one string, `lkn1.<kid>.<nonce>.<ciphertext>` (base64url parts): the version, the
 * key id it was made under, a random 12-byte nonce (NIST SP 800-38D §8.2.2: random nonces are safe
 * far beyond the number of saves one user makes), and the ciphertext with its tag. The additional data
 * binds it to the account (`sub`) and the key id, so a backend that hands one user's note to another,
 * or swaps the key id, makes it fail to open rather than show.
 */

const VERSION = 'lkn1';
const NONCE_BYTES = 12;
/** FxA's kid: the rotation time in seconds, a dash, and a base64url fingerprint. */
const KID = /^[0-9]{1,16}-[A-Za-z0-9_-]{1,64}$/;

/** core's bytes always sit on a plain ArrayBuffer (never a shared one), which WebCrypto's types ask to be told. */
const onArrayBuffer = (bytes: Uint8Array) => bytes as Uint8Array<ArrayBuffer>;

/** The scoped key as the page keeps it: a non-extractable AES-GCM key and its kid. */
export interface NoteKey {
  key: CryptoKey;
  kid: string;
}

/**
 * Imports the scoped key Latchkey delivered as a WebCrypto key that cannot be read back out (not even
 * by a script injected into this page later), so only the CryptoKey is kept (in IndexedDB) and the
 * JWK can be dropped.
 */
export async function importNoteKey(jwk: ScopedKeyJwk): Promise<NoteKey> {
  const raw = fromBase64Url(jwk.k, 'the scoped key');
  try {
    if (jwk.kty !== 'oct' || raw.length !== 32 || !KID.test(jwk.kid)) {
      throw new LatchkeyError('LK_SCOPED_KEYS_BUNDLE_INVALID', 'The scoped key is not a 32-byte key with an FxA kid.');
    }
    const key = await crypto.subtle.importKey('raw', onArrayBuffer(raw), { name: 'AES-GCM' }, false, [
      'encrypt',
      'decrypt',
    ]);
    return { key, kid: jwk.kid };
  } finally {
    raw.fill(0);
  }
}

function additionalData(sub: string, kid: string): Uint8Array {
  return utf8(`latchkey-notes/v1\n${sub}\n${kid}`);
}

/** Encrypts `text` for `sub` under `noteKey`: the string the backend stores. */
export async function sealNote(noteKey: NoteKey, sub: string, text: string): Promise<string> {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: onArrayBuffer(additionalData(sub, noteKey.kid)) },
    noteKey.key,
    onArrayBuffer(utf8(text)),
  );
  return [VERSION, noteKey.kid, toBase64Url(nonce), toBase64Url(new Uint8Array(sealed))].join('.');
}

/** The parts of a stored note, checked for shape; `LK_VALIDATION` when it is not one of ours. */
function parseEnvelope(stored: string): { kid: string; nonce: Uint8Array; sealed: Uint8Array } {
  const [version, kid, nonce, sealed, ...rest] = stored.split('.');
  if (version !== VERSION || kid === undefined || !KID.test(kid) || sealed === undefined || rest.length > 0) {
    throw new LatchkeyError('LK_VALIDATION', 'The stored note is not a notes envelope (lkn1).');
  }
  const parsed = { kid, nonce: fromBase64Url(nonce ?? '', 'nonce'), sealed: fromBase64Url(sealed, 'ciphertext') };
  if (parsed.nonce.length !== NONCE_BYTES || parsed.sealed.length < 16) {
    throw new LatchkeyError('LK_VALIDATION', 'The stored note is truncated.');
  }
  return parsed;
}

/**
 * Decrypts a stored note for `sub`. Throws `LK_SECRET_DECRYPT_FAILED` when it was made under another
 * key (a password reset rotates kB-class keys, and their kid) or does not open (altered, or another
 * account's), and `LK_VALIDATION` when it is not a note at all.
 */
export async function openNote(noteKey: NoteKey, sub: string, stored: string): Promise<string> {
  const { kid, nonce, sealed } = parseEnvelope(stored);
  if (kid !== noteKey.kid) {
    throw new LatchkeyError(
      'LK_SECRET_DECRYPT_FAILED',
      `This note was saved under key ${kid}, and Latchkey now gives this app key ${noteKey.kid}: ` +
        'a password reset changes kB-class keys, so the old note cannot be opened.',
    );
  }
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: onArrayBuffer(nonce), additionalData: onArrayBuffer(additionalData(sub, kid)) },
      noteKey.key,
      onArrayBuffer(sealed),
    );
  } catch {
    throw new LatchkeyError(
      'LK_SECRET_DECRYPT_FAILED',
      'The stored note does not open: it was altered, or is not yours.',
    );
  }
  return fromUtf8(new Uint8Array(plain));
}
