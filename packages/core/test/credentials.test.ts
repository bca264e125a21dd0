import {
  fakeCredentialIdentifier,
  type MasterKey,
  newCredentialIdentifier,
  normalizeEmail,
  openRegistrationTicket,
  type RegistrationBinding,
  sealRegistrationTicket,
  toBase64Url,
} from '@latchkey/core';
import { describe, expect, it } from 'vitest';
import { latchkeyErrorOf } from '../../../test/support/errors.js';

const masterKey = new Uint8Array(32).fill(7) as MasterKey;
const otherMasterKey = new Uint8Array(32).fill(8) as MasterKey;
const NOW = 1_750_000_000_000;
const signUp: RegistrationBinding = { purpose: 'sign-up', email: 'alice@example.com' };
const nonce = new Uint8Array(12).fill(3);
const id = newCredentialIdentifier(new Uint8Array(32).fill(1));
const ticket = sealRegistrationTicket(masterKey, signUp, id, NOW + 1000, nonce);
const codeOf = (action: () => unknown) => latchkeyErrorOf(action).code;

describe('credential identifiers (issue 8)', () => {
  it('are never an email, so none lands on an account that kept its email from before migration 005', () => {
    expect(() => normalizeEmail(id)).toThrow();
    expect(() => normalizeEmail(fakeCredentialIdentifier(masterKey, 'alice@example.com'))).toThrow();
    expect(newCredentialIdentifier(new Uint8Array(32).fill(2))).not.toBe(id);
  });

  it('for an unknown email are stable, keyed, and one per email', () => {
    const fake = fakeCredentialIdentifier(masterKey, 'alice@example.com');
    expect(fakeCredentialIdentifier(masterKey, 'alice@example.com')).toBe(fake);
    expect(fakeCredentialIdentifier(masterKey, 'bob@example.com')).not.toBe(fake);
    expect(fakeCredentialIdentifier(otherMasterKey, 'alice@example.com')).not.toBe(fake);
  });
});

describe('registration tickets', () => {
  it('give back the identifier for the binding they were sealed for, until they expire', () => {
    expect(openRegistrationTicket(masterKey, signUp, ticket, NOW)).toBe(id);
    expect(codeOf(() => openRegistrationTicket(masterKey, signUp, ticket, NOW + 1000))).toBe(
      'LK_REGISTRATION_TICKET_INVALID',
    );
  });

  it('open for no other email, account, purpose or server', () => {
    const others: RegistrationBinding[] = [
      { purpose: 'sign-up', email: 'mallory@example.com' },
      { purpose: 're-register', accountId: 'alice@example.com' },
    ];
    for (const binding of others) {
      expect(codeOf(() => openRegistrationTicket(masterKey, binding, ticket, NOW))).toBe(
        'LK_REGISTRATION_TICKET_INVALID',
      );
    }
    expect(codeOf(() => openRegistrationTicket(otherMasterKey, signUp, ticket, NOW))).toBe(
      'LK_REGISTRATION_TICKET_INVALID',
    );
  });

  it('refuse any change to their bytes, and malformed base64 as such', () => {
    const bytes = Buffer.from(ticket, 'base64url');
    for (let i = 0; i < bytes.length; i += 7) {
      const flipped = Uint8Array.from(bytes);
      flipped[i] = (flipped[i] as number) ^ 1;
      expect(codeOf(() => openRegistrationTicket(masterKey, signUp, toBase64Url(flipped), NOW))).toBe(
        'LK_REGISTRATION_TICKET_INVALID',
      );
    }
    expect(codeOf(() => openRegistrationTicket(masterKey, signUp, ticket.slice(0, 5), NOW))).toBe('LK_BAD_BASE64');
  });
});
