import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  type ExportKey,
  fromBase64Url,
  type KB,
  LOGIN_RATE_LIMITS,
  type MasterKey,
  utf8,
  wrapKB,
} from '@latchkey/core';
import { connect, DEFAULTS, openStore, type ServerConfig } from '@latchkey/server';
import { expand } from '@noble/hashes/hkdf.js';
import { sha512 } from '@noble/hashes/sha2.js';
import * as opaque from '@serenity-kit/opaque';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadOrCreateOpaqueSetup } from '../../packages/server/src/modules/accounts/opaque-setup.js';
import { postFrom } from '../support/from-address.js';
import { createTestDatabase } from '../support/postgres.js';
import { postJson } from '../support/raw-login.js';
import { createVerifiedAccount, startTestServer, TEST_KEY_STRETCHING, type TestServer } from '../support/server.js';

/**
 * Issue 8: registration as an OPRF oracle. Before the fix, `register/start` evaluated the OPRF under
 * the key derived for any email, with no limit: with one KE2 of the victim's, a stranger could test
 * password guesses offline (RFC 9807 §10.2 names exactly this as what the rate limits on the OPRF
 * evaluation are for). Here the attack is run for real against a server with the default limits, on
 * SQLite and PostgreSQL; the victim's password is early in the dictionary, well inside what the limits
 * let through, so only the fix can stop the attack from finding it.
 */

await opaque.ready;

/** RFC 9807 sizes for ristretto255-SHA512: Noe, Nn, Npk, Nm. */
const NOE = 32;
const NN = 32;
const NPK = 32;
const NM = 64;
/** Nh: the masking key's length (SHA-512). */
const NH = 64;

const VICTIM_PASSWORD = 'sunshine1';
/** A small dictionary with the victim's password at its eighth word, then filler past every limit. */
const DICTIONARY = [
  'password',
  '12345678',
  'qwertyuiop',
  'iloveyou',
  'football',
  'princess',
  'letmein123',
  VICTIM_PASSWORD,
  'baseball',
  'dragon123',
  ...Array.from({ length: 40 }, (_, i) => `trustno1-${i}`),
];

/**
 * The server public key inside KE2's masked response, unmasked with a masking key (RFC 9807 §6.3.2.2:
 * masked_response = (server_public_key ‖ envelope) XOR Expand(masking_key, masking_nonce ‖
 * "CredentialResponsePad", Npk + Nn + Nm)). Only the masking key the victim's record holds unmasks it.
 */
function unmaskServerPublicKey(ke2: Uint8Array, maskingKey: Uint8Array): Uint8Array {
  const maskingNonce = ke2.subarray(NOE, NOE + NN);
  const masked = ke2.subarray(NOE + NN, NOE + NN + NPK + NN + NM);
  const info = new Uint8Array([...maskingNonce, ...utf8('CredentialResponsePad')]);
  const pad = expand(sha512, maskingKey, info, NPK + NN + NM);
  return masked.subarray(0, NPK).map((byte, i) => byte ^ (pad[i] as number));
}

/**
 * One offline-checkable guess: register/start for the victim's email with the guess, the client's
 * finishRegistration (never sent) for the masking key it derives, and KE2 unmasked with it. Returns
 * whether the server's public key came out, i.e. whether this guess is the victim's password.
 */
async function guessViaRegistration(
  server: TestServer,
  attacker: string,
  email: string,
  ke2: Uint8Array,
  guess: string,
) {
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password: guess });
  const started = await postFrom(attacker, server.url, '/v1/account/register/start', { email, registrationRequest });
  if (started.status !== 200) return { answered: false as const, status: started.status, code: started.body.code };
  const registrationResponse = started.body.registrationResponse as string;
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse,
    password: guess,
    keyStretching: TEST_KEY_STRETCHING,
  });
  // RegistrationResponse = evaluated_message ‖ server_public_key; record = client_public_key ‖ masking_key ‖ envelope.
  const serverPublicKey = fromBase64Url(registrationResponse).subarray(NOE, NOE + NPK);
  const maskingKey = fromBase64Url(registrationRecord).subarray(NPK, NPK + NH);
  const unmasked = unmaskServerPublicKey(ke2, maskingKey);
  return { answered: true as const, matches: Buffer.from(unmasked).equals(Buffer.from(serverPublicKey)) };
}

/** The victim's KE2 for a login the attacker starts (and never finishes). */
async function victimKe2(server: TestServer, email: string, password = 'not the password') {
  const { startLoginRequest } = opaque.client.startLogin({ password });
  const started = await postJson(server.url, '/v1/session/login/start', { email, startLoginRequest });
  expect(started.status).toBe(200);
  return fromBase64Url(started.body.loginResponse as string);
}

/** The evaluated element of a KE2 (its first Noe bytes): the server's OPRF key applied to the KE1's blind. */
const evaluatedElement = (ke2: Uint8Array) => Buffer.from(ke2.subarray(0, NOE)).toString('hex');

/** A login start's KE2 for a fixed KE1, from an address of its own so no login limit is shared. */
async function ke2For(server: TestServer, email: string, startLoginRequest: string) {
  const started = await postJson(server.url, '/v1/session/login/start', { email, startLoginRequest });
  expect(started.status).toBe(200);
  return fromBase64Url(started.body.loginResponse as string);
}

/**
 * Turns an account into what migration 005 leaves of one made before it: its credential identifier is
 * its email, and its record was made under that email (as the old server made every record), with the
 * server's own OPAQUE setup. The test plays the old server by writing through the store.
 */
async function makeLegacyAccount(server: TestServer, email: string, password: string): Promise<void> {
  const store = await openStore(connect(server.config.databaseUrl));
  try {
    const masterKey = new Uint8Array(readFileSync(server.config.masterKeyFile)) as MasterKey;
    const serverSetup = await loadOrCreateOpaqueSetup(store, masterKey, (n) => new Uint8Array(randomBytes(n)));
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
    const { registrationResponse } = opaque.server.createRegistrationResponse({
      serverSetup,
      userIdentifier: email,
      registrationRequest,
    });
    const { registrationRecord, exportKey } = opaque.client.finishRegistration({
      clientRegistrationState,
      registrationResponse,
      password,
      keyStretching: TEST_KEY_STRETCHING,
    });
    const account = await store.findAccountByEmail(email);
    if (account === undefined) throw new Error('no such account');
    const kB = new Uint8Array(randomBytes(32)) as KB;
    await store.updateCredentials(account.id, {
      credentialId: email,
      opaqueRecord: fromBase64Url(registrationRecord),
      wrapKB: wrapKB(kB, fromBase64Url(exportKey) as ExportKey, new Uint8Array(randomBytes(12))),
      passwordChangedAt: account.password_changed_at + 1,
    });
  } finally {
    await store.close();
  }
}

const BACKENDS: Array<[string, () => Promise<Partial<ServerConfig>>]> = [
  ['SQLite', async () => ({})],
  ['PostgreSQL', async () => ({ databaseUrl: await createTestDatabase(inject('postgresUrl'), 'oprf_oracle') })],
];

describe.each(BACKENDS)('registration is no OPRF oracle on %s', (_name, freshDatabase) => {
  let server: TestServer;
  beforeAll(async () => {
    const frozen = Date.now();
    // The production limits, so what the attack gets is what it would get from a default server.
    server = await startTestServer(
      { ...(await freshDatabase()), rateLimits: DEFAULTS.rateLimits },
      { now: () => frozen },
    );
  });
  afterAll(async () => server?.close());

  it('the unmasking in this test works: a record unmasks the KE2 made from it, and only that record', () => {
    // Without this, the attack below could "fail" only because the test's unmasking is wrong. Checked
    // against the library's own server in process: register once under one credential identifier,
    // start a login with the record, and unmask with the record's masking key and with a wrong one.
    const setup = opaque.server.createSetup();
    const register = (password: string) => {
      const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
      const { registrationResponse } = opaque.server.createRegistrationResponse({
        serverSetup: setup,
        userIdentifier: 'self-check',
        registrationRequest,
      });
      const finished = opaque.client.finishRegistration({
        clientRegistrationState,
        registrationResponse,
        password,
        keyStretching: TEST_KEY_STRETCHING,
      });
      return fromBase64Url(finished.registrationRecord);
    };
    const record = register(VICTIM_PASSWORD);
    const wrong = register('not the password');
    const ke2 = opaque.server.startLogin({
      serverSetup: setup,
      userIdentifier: 'self-check',
      registrationRecord: Buffer.from(record).toString('base64url'),
      startLoginRequest: opaque.client.startLogin({ password: 'anything at all' }).startLoginRequest,
    }).loginResponse;
    const serverPublicKey = fromBase64Url(opaque.server.getPublicKey(setup));
    const unmaskWith = (r: Uint8Array) =>
      Buffer.from(unmaskServerPublicKey(fromBase64Url(ke2), r.subarray(NPK, NPK + NH)));
    expect(unmaskWith(record).equals(Buffer.from(serverPublicKey))).toBe(true);
    expect(unmaskWith(wrong).equals(Buffer.from(serverPublicKey))).toBe(false);
  });

  it('one KE2 and register/start for the victim’s email find no password, and register/start is limited', async () => {
    const email = 'victim@example.com';
    await createVerifiedAccount(server, email, VICTIM_PASSWORD);
    const ke2 = await victimKe2(server, email);

    const outcomes = [];
    // One attacker address: its 50 starts stay under the per-address flood guard (60), so what refuses
    // them is the per-email limit.
    const attacker = '127.8.0.1';
    for (const guess of DICTIONARY) {
      outcomes.push({ guess, ...(await guessViaRegistration(server, attacker, email, ke2, guess)) });
    }

    const answered = outcomes.filter((outcome) => outcome.answered);
    const refused = outcomes.filter((outcome) => !outcome.answered);
    // The victim's password was among the guesses answered: only the fix can keep it from matching.
    expect(answered.map((outcome) => outcome.guess)).toContain(VICTIM_PASSWORD);
    expect(answered.filter((outcome) => outcome.answered && outcome.matches).map((outcome) => outcome.guess)).toEqual(
      [],
    );
    // register/start is limited per email like a login start (the victim's own sign-up was one of the
    // email's starts): the rest of the dictionary is refused.
    expect(answered.length).toBe(DEFAULTS.rateLimits.registerPerEmail.max - 1);
    expect(refused.map((outcome) => [outcome.status, outcome.code])).toEqual(
      refused.map(() => [429, 'LK_RATE_LIMITED']),
    );
    // And the victim, whose email all this was aimed at, logs in as before.
    await server.client().logIn(email, VICTIM_PASSWORD);
  });

  it('register/start from one address is limited whatever the emails, like a login start', async () => {
    // The login start's flood guard, which the issue asks register/start to share.
    const { max } = LOGIN_RATE_LIMITS.startsPerAddress;
    const { registrationRequest } = opaque.client.startRegistration({ password: VICTIM_PASSWORD });
    const statuses = [];
    for (let i = 0; i <= max; i += 1) {
      const started = await postFrom('127.8.0.3', server.url, '/v1/account/register/start', {
        email: `someone-${i}@example.com`,
        registrationRequest,
      });
      statuses.push(started.status === 200 ? 200 : `${started.status} ${String(started.body.code)}`);
    }
    expect(statuses).toEqual([...Array.from({ length: max }, () => 200), '429 LK_RATE_LIMITED']);
  });

  it('register/start evaluates under a fresh key each time, never one an email keeps', async () => {
    // The same blinded element twice for one email: before the fix both answers held the same
    // evaluated element (the email's key); now each start has a random credential identifier.
    const { registrationRequest } = opaque.client.startRegistration({ password: VICTIM_PASSWORD });
    const answers = [];
    for (let i = 0; i < 2; i += 1) {
      const started = await postJson(server.url, '/v1/account/register/start', {
        email: 'twice@example.com',
        registrationRequest,
      });
      expect(started.status).toBe(200);
      answers.push(evaluatedElement(fromBase64Url(started.body.registrationResponse as string)));
    }
    expect(answers[0]).not.toBe(answers[1]);
  });

  it('a login start for an unknown email answers like one for an account: stable per email, the same shape', async () => {
    await createVerifiedAccount(server, 'known@example.com', VICTIM_PASSWORD);
    const { startLoginRequest } = opaque.client.startLogin({ password: 'some guess' });
    const known = [await ke2For(server, 'known@example.com', startLoginRequest)];
    known.push(await ke2For(server, 'known@example.com', startLoginRequest));
    const unknown = [await ke2For(server, 'nobody@example.com', startLoginRequest)];
    unknown.push(await ke2For(server, 'nobody@example.com', startLoginRequest));
    // One key per email, real or fake (RFC 9807 §10.9): repeating a KE1 does not tell them apart.
    expect(evaluatedElement(known[1] as Uint8Array)).toBe(evaluatedElement(known[0] as Uint8Array));
    expect(evaluatedElement(unknown[1] as Uint8Array)).toBe(evaluatedElement(unknown[0] as Uint8Array));
    expect(evaluatedElement(unknown[0] as Uint8Array)).not.toBe(evaluatedElement(known[0] as Uint8Array));
    expect(new Set([...known, ...unknown].map((ke2) => ke2.length))).toEqual(new Set([known[0]?.length]));
  });

  it('a password change swaps in a new credential identifier, only with a fresh password check', async () => {
    const email = 'changer@example.com';
    const { client } = await createVerifiedAccount(server, email, VICTIM_PASSWORD);
    const { startLoginRequest } = opaque.client.startLogin({ password: 'some guess' });
    const before = evaluatedElement(await ke2For(server, email, startLoginRequest));
    const session = await client.logIn(email, VICTIM_PASSWORD);
    await session.changePassword(VICTIM_PASSWORD, 'a much better password');
    // A new record under a new identifier: the same KE1 meets another OPRF key.
    expect(evaluatedElement(await ke2For(server, email, startLoginRequest))).not.toBe(before);
    await client.logIn(email, 'a much better password');
  });

  it('an account made before the fix keeps its email as identifier: it logs in, and register/start no longer reaches its key', async () => {
    const email = 'legacy@example.com';
    await createVerifiedAccount(server, email, 'a placeholder password');
    await makeLegacyAccount(server, email, VICTIM_PASSWORD);
    await server.client().logIn(email, VICTIM_PASSWORD);

    const ke2 = await victimKe2(server, email);
    const outcomes = [];
    for (const guess of DICTIONARY.slice(0, 10)) {
      outcomes.push(await guessViaRegistration(server, '127.8.0.2', email, ke2, guess));
    }
    expect(outcomes.every((outcome) => outcome.answered)).toBe(true);
    expect(outcomes.filter((outcome) => outcome.answered && outcome.matches)).toEqual([]);
  });
});
