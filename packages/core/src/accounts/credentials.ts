import type { MasterKey } from '../brand.js';
import { hkdfSha256, hmacSha256 } from '../crypto/primitives.js';
import { concatBytes, fromBase64Url, fromUtf8, toBase64Url, utf8 } from '../encoding.js';
import { LatchkeyError } from '../errors.js';
import { INFO, openAtRest, sealAtRest } from './keys.js';

/**
 * OPAQUE credential identifiers (RFC 9807 §4: the server derives each record's OPRF key from
 * `credential_identifier`). An account's is random and fixed when its record is made, never its email:
 * with the email as identifier, anyone could make the server evaluate an existing account's OPRF key
 * (a registration start for that email) and, holding one KE2 of the account's, test passwords offline
 * (issue 8; RFC 9807 §10.2). The email only finds the account; what the OPRF is evaluated under is
 * reachable only through that account's own login.
 *
 * Identifiers made here hold a `:`, which no email may (normalizeEmail refuses it), so none equals an
 * email: accounts made before migration 005 keep their email as identifier (their records were made
 * under it), and no new identifier, real or fake, can land on one of theirs.
 */

const FRESH_PREFIX = 'cid:';
const FAKE_PREFIX = 'fake:';
/** The at-rest purpose a ticket is sealed under (its key: HKDF of the master key, info `latchkey/v1/at-rest/registration-ticket`). */
const TICKET_PURPOSE = 'registration-ticket';

/** A new random credential identifier, from 32 random bytes. */
export function newCredentialIdentifier(random: Uint8Array): string {
  if (random.length !== 32) throw new RangeError('need 32 random bytes');
  return FRESH_PREFIX + toBase64Url(random);
}

/**
 * The identifier a login for an unknown email runs under (RFC 9807 §10.9, the fake record): keyed by
 * the master key and stable per email, so repeating a KE1 gives the same evaluated element as a real
 * account's would, and the answer does not tell that the email has no account.
 */
export function fakeCredentialIdentifier(masterKey: MasterKey, email: string): string {
  const key = hkdfSha256(masterKey, new Uint8Array(0), INFO.fakeCredential, 32);
  return FAKE_PREFIX + toBase64Url(hmacSha256(key, utf8(email)));
}

/** How long a registration ticket stays good: a registration's two steps are seconds apart. */
export const REGISTRATION_TICKET_TTL_MS = 15 * 60 * 1000;

/**
 * What a registration ticket is bound to: a sign-up to the email it is for, a password change or a
 * reset to the account. A ticket for one never finishes another.
 */
export type RegistrationBinding = { purpose: 'sign-up'; email: string } | { purpose: 're-register'; accountId: string };

function bindingLabel(binding: RegistrationBinding): string {
  return binding.purpose === 'sign-up' ? `sign-up\u0000${binding.email}` : `re-register\u0000${binding.accountId}`;
}

/**
 * The credential identifier a registration start evaluated the OPRF under, sealed for the client to
 * hand back at the finish: the record the client makes is valid only under that identifier, and the
 * server keeps no state between the two steps. Sealed under the master key and bound to `binding`, so
 * a client can neither read nor choose the identifier, nor move a ticket to another email or account.
 */
export function sealRegistrationTicket(
  masterKey: MasterKey,
  binding: RegistrationBinding,
  credentialIdentifier: string,
  expiresAt: number,
  nonce: Uint8Array,
): string {
  const expiry = new Uint8Array(8);
  new DataView(expiry.buffer).setBigUint64(0, BigInt(expiresAt));
  const plain = concatBytes(expiry, utf8(credentialIdentifier));
  return toBase64Url(sealAtRest(masterKey, TICKET_PURPOSE, bindingLabel(binding), plain, nonce));
}

/** A ticket's bytes: `LK_BAD_BASE64` unless canonical base64url, as for every other field. */
export function decodeRegistrationTicket(ticket: string): Uint8Array {
  return fromBase64Url(ticket, 'registrationTicket');
}

/**
 * The credential identifier in a ticket; `LK_REGISTRATION_TICKET_INVALID` when the ticket was not
 * sealed by this server for `binding`, or has expired.
 */
export function openRegistrationTicket(
  masterKey: MasterKey,
  binding: RegistrationBinding,
  ticket: string,
  now: number,
): string {
  const sealed = decodeRegistrationTicket(ticket);
  let plain: Uint8Array;
  try {
    plain = openAtRest(masterKey, TICKET_PURPOSE, bindingLabel(binding), sealed);
  } catch {
    throw new LatchkeyError('LK_REGISTRATION_TICKET_INVALID');
  }
  if (plain.length <= 8) throw new LatchkeyError('LK_REGISTRATION_TICKET_INVALID');
  const expiresAt = Number(new DataView(plain.buffer, plain.byteOffset, 8).getBigUint64(0));
  if (expiresAt <= now) throw new LatchkeyError('LK_REGISTRATION_TICKET_INVALID');
  return fromUtf8(plain.subarray(8));
}
