import { randomBytes } from 'node:crypto';
import { LatchkeyClient, LatchkeyError, type Session } from '@latchkey/client';
import { DEFAULTS, type ServerConfig } from '@latchkey/server';
import * as opaque from '@serenity-kit/opaque';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { codeOf } from '../support/errors.js';
import { fetchFrom, loopbackAddress, postFrom } from '../support/from-address.js';
import { createTestDatabase } from '../support/postgres.js';
import { createVerifiedAccount, startTestServer, TEST_KEY_STRETCHING, type TestServer } from '../support/server.js';

/**
 * Login limits against strangers (issue 7): who can be held back, and how many guesses get through.
 * Every client here is a real socket from its own loopback address (127.0.0.0/8 is all loopback on
 * Linux), so the server keys its buckets on the peer address as it would in production. The clock
 * stands still, so each test stays inside one rate-limit window. Every test runs on SQLite and on
 * PostgreSQL.
 */

await opaque.ready;

const HOUR = 60 * 60_000;
/** Small limits, so that filling them takes few requests; every one is named in the tests. */
const SMALL: ServerConfig['rateLimits'] = {
  ...DEFAULTS.rateLimits,
  loginPerAddress: { max: 5, windowMs: HOUR },
  loginPerAccountAddress: { max: 3, windowMs: HOUR },
  loginPerAccount: { max: 12, windowMs: HOUR },
  loginPerDevice: { max: 3, windowMs: HOUR },
  reauthPerSession: { max: 2, windowMs: HOUR },
};
const ATTACKERS = 1_000;

/** A client whose requests leave from `address`. */
function clientFrom(server: TestServer, address: string): LatchkeyClient {
  return new LatchkeyClient({
    serverUrl: server.url,
    keyStretching: server.config.keyStretching,
    fetch: fetchFrom(address),
  });
}

/** Runs `work` for 0..count-1, at most `width` at a time. */
async function inParallel(count: number, width: number, work: (i: number) => Promise<void>): Promise<void> {
  for (let from = 0; from < count; from += width) {
    await Promise.all(Array.from({ length: Math.min(width, count - from) }, (_, k) => work(from + k)));
  }
}

/**
 * One stranger's guess from `address`: a login start with KE1 for `guess`. An answered start is a
 * guess made, whatever follows: the KE2 alone tells the stranger whether the guess was right (the
 * envelope opens only under the right password), and a KE3 adds nothing. The stranger then sends a
 * KE3 anyway (random bytes, since a wrong guess yields none) to see what a finish answers.
 */
async function strangerGuess(server: TestServer, address: string, email: string, guess: string, deviceToken?: string) {
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: guess });
  const started = await postFrom(address, server.url, '/v1/session/login/start', {
    email,
    startLoginRequest,
    ...(deviceToken === undefined ? {} : { deviceToken }),
  });
  if (started.status !== 200) return { answered: false as const, code: started.body.code };
  const opened = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: started.body.loginResponse as string,
    password: guess,
    keyStretching: TEST_KEY_STRETCHING,
  });
  const finished = await postFrom(address, server.url, '/v1/session/login/finish', {
    loginId: started.body.loginId,
    finishLoginRequest: opened?.finishLoginRequest ?? randomBytes(64).toString('base64url'),
  });
  return { answered: true as const, rightGuess: opened !== undefined, finishCode: finished.body.code };
}

/** KE1s that are not KE1s: the wrong length, not base64url, not group elements. */
const MALFORMED_KE1 = [
  randomBytes(95).toString('base64url'),
  randomBytes(97).toString('base64url'),
  Buffer.alloc(96, 0xff).toString('base64url'),
  Buffer.alloc(96).toString('base64url'),
  'not base64url!',
];

/** Each backend, as the settings of a fresh database on it. */
const BACKENDS: Array<[string, () => Promise<Partial<ServerConfig>>]> = [
  ['SQLite', async () => ({})],
  ['PostgreSQL', async () => ({ databaseUrl: await createTestDatabase(inject('postgresUrl'), 'login_limits') })],
];

describe.each(BACKENDS)('login limits on %s', (_name, freshDatabase) => {
  let server: TestServer;
  beforeAll(async () => {
    const frozen = Date.now();
    server = await startTestServer({ ...(await freshDatabase()), rateLimits: SMALL }, { now: () => frozen });
  });
  afterAll(async () => server?.close());

  it("reproduces the issue's lockout and shows it gone: 11 starts from 11 addresses, malformed or not", async () => {
    // The issue's numbers are the defaults' (then ten starts per account), so this test runs on a
    // server with the default limits.
    const frozen = Date.now();
    const defaults = await startTestServer(await freshDatabase(), { now: () => frozen });
    try {
      const email = 'issue@example.com';
      const { accountId } = await createVerifiedAccount(defaults, email, 'the owner password');
      const live = await clientFrom(defaults, '127.0.0.1').logIn(email, 'the owner password');
      const refused: unknown[] = [];
      const answered: boolean[] = [];
      for (let i = 1; i <= 11; i++) {
        const address = loopbackAddress(10, i);
        const malformed = await postFrom(address, defaults.url, '/v1/session/login/start', {
          email,
          startLoginRequest: MALFORMED_KE1[i % MALFORMED_KE1.length],
        });
        refused.push([malformed.status, malformed.body.code]);
        answered.push((await strangerGuess(defaults, address, email, `guess ${i}`)).answered);
      }
      // The owner, from an address of their own, with no device token: logs in.
      const owner = await clientFrom(defaults, '127.0.9.1').logIn(email, 'the owner password');
      expect(owner.accountId).toBe(accountId);
      // The malformed starts were refused as such, and the eleven guesses are within the account's limit.
      expect(refused).toEqual(
        Array.from({ length: 11 }, (_, i) =>
          (i + 1) % MALFORMED_KE1.length === 4 ? [400, 'LK_VALIDATION'] : [400, 'LK_OPAQUE_MESSAGE_INVALID'],
        ),
      );
      expect(answered).toEqual(new Array(11).fill(true));
      // And the session that was live all along can still do what needs a fresh password check.
      await live.reauthenticate('the owner password');
      expect(await live.changePassword('the owner password', 'a new owner password')).toEqual({ revokedSessions: 1 });
      await live.deleteAccount('a new owner password');
      expect(await codeOf(live.account())).toBe('LK_UNAUTHORIZED');
    } finally {
      await defaults.close();
    }
  });

  it("charges the owner's refused attempts nothing once the strangers' window has passed", async () => {
    // The account's window is shorter than the (account, address) one here, so what the refused
    // attempts left in the owner's own bucket shows once the account's window has ended.
    let clock = Date.now();
    const shortWindow = await startTestServer(
      {
        ...(await freshDatabase()),
        rateLimits: {
          ...SMALL,
          loginPerAccount: { max: 4, windowMs: 60_000 },
          loginPerAccountAddress: { max: 3, windowMs: HOUR },
        },
      },
      { now: () => clock },
    );
    try {
      const email = 'patient@example.com';
      await createVerifiedAccount(shortWindow, email, 'the owner password');
      for (let i = 1; i <= 6; i++) await strangerGuess(shortWindow, loopbackAddress(8, i), email, `guess ${i}`);
      const owner = clientFrom(shortWindow, '127.24.0.1');
      // Four tries: past the owner's own limit of three, within the flood guard's five.
      for (let i = 0; i < 4; i++) {
        expect(await codeOf(owner.logIn(email, 'the owner password'))).toBe('LK_RATE_LIMITED');
      }
      clock += 60_000;
      const session = await owner.logIn(email, 'the owner password');
      expect(session.state.deviceToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    } finally {
      await shortWindow.close();
    }
  });

  it('lets no number of strangers stop the owner on a known device, nor guess more than the account allows', async () => {
    const email = 'target@example.com';
    const password = 'the owner password';
    await createVerifiedAccount(server, email, password);
    const laptop = await clientFrom(server, '127.20.0.1').logIn(email, password, { deviceName: 'laptop' });
    const firstToken = laptop.state.deviceToken as string;
    expect(firstToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

    let guesses = 0;
    let finishesAnswered = 0;
    const tally = (result: Awaited<ReturnType<typeof strangerGuess>>) => {
      if (!result.answered) {
        expect(result.code).toBe('LK_RATE_LIMITED');
        return;
      }
      guesses += 1;
      expect(result.rightGuess).toBe(false);
      if (result.finishCode !== 'LK_RATE_LIMITED') finishesAnswered += 1;
      expect(result.finishCode).toBe('LK_LOGIN_FAILED');
    };
    // One address: the tight (account, address) limit answers 3 of its 5 tries.
    const near = loopbackAddress(1, 1);
    for (let i = 0; i < 5; i++) tally(await strangerGuess(server, near, email, `near guess ${i}`));
    expect(guesses).toBe(SMALL.loginPerAccountAddress.max);
    // A thousand more addresses, twenty at a time: together they get what the account allows, no more.
    await inParallel(ATTACKERS, 20, async (i) => {
      tally(await strangerGuess(server, loopbackAddress(2, i + 1), email, `far guess ${i}`));
    });
    expect(guesses).toBe(SMALL.loginPerAccount.max);
    expect(finishesAnswered).toBe(SMALL.loginPerAccount.max);
    // A made-up device token is no token: still refused.
    const forged = await strangerGuess(
      server,
      loopbackAddress(3, 1),
      email,
      'x',
      randomBytes(32).toString('base64url'),
    );
    expect(forged).toEqual({ answered: false, code: 'LK_RATE_LIMITED' });

    // The owner on a device never used before waits like any unknown client...
    const error = await clientFrom(server, '127.20.0.2')
      .logIn(email, password)
      .catch((e: unknown) => e);
    expect((error as LatchkeyError).code).toBe('LK_RATE_LIMITED');
    expect((error as LatchkeyError).details?.retryAfterSeconds).toBeGreaterThan(0);
    // ...but the known device logs in, even from the address the strangers filled.
    const again = await clientFrom(server, near).logIn(email, password, { deviceToken: firstToken });
    const secondToken = again.state.deviceToken as string;
    expect(secondToken).not.toBe(firstToken);
    // The token presented is used up: a copy of it is no longer a known device.
    expect(await codeOf(clientFrom(server, '127.20.0.3').logIn(email, password, { deviceToken: firstToken }))).toBe(
      'LK_RATE_LIMITED',
    );
    const third = await clientFrom(server, '127.20.0.3').logIn(email, password, { deviceToken: secondToken });
    expect(third.state.deviceToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Nothing the owner did opened the account to strangers again.
    tally(await strangerGuess(server, loopbackAddress(3, 2), email, 'late guess'));
    expect(guesses).toBe(SMALL.loginPerAccount.max);
  });

  it('gives a stolen device token no more guesses than its own limit, and other devices keep theirs', async () => {
    const email = 'stolen@example.com';
    const password = 'the owner password';
    await createVerifiedAccount(server, email, password);
    const laptop = await clientFrom(server, '127.21.0.1').logIn(email, password);
    const phone = await clientFrom(server, '127.21.0.1').logIn(email, password);
    const stolen = laptop.state.deviceToken as string;
    const thief = loopbackAddress(4, 1);
    let answered = 0;
    for (let i = 0; i < SMALL.loginPerDevice.max + 2; i++) {
      if ((await strangerGuess(server, thief, email, `thief guess ${i}`, stolen)).answered) answered += 1;
    }
    expect(answered).toBe(SMALL.loginPerDevice.max);
    // Spent on wrong guesses, the token does not let even the right password in.
    expect(await codeOf(clientFrom(server, '127.21.0.1').logIn(email, password, { deviceToken: stolen }))).toBe(
      'LK_RATE_LIMITED',
    );
    // The thief's guesses counted against that token only: the phone and unknown clients are untouched.
    await clientFrom(server, '127.21.0.1').logIn(email, password, { deviceToken: phone.state.deviceToken as string });
    await clientFrom(server, loopbackAddress(4, 2)).logIn(email, password);
  });

  it('refuses malformed input without counting it anywhere', async () => {
    const email = 'malformed@example.com';
    const password = 'the owner password';
    await createVerifiedAccount(server, email, password);
    const { startLoginRequest } = opaque.client.startLogin({ password: 'any' });
    const refusals: Array<[unknown, Record<string, unknown>]> = [
      ...MALFORMED_KE1.map((ke1): [unknown, Record<string, unknown>] => [
        expect.stringMatching(/^LK_(OPAQUE_MESSAGE_INVALID|VALIDATION)$/),
        { email, startLoginRequest: ke1 },
      ]),
      ['LK_VALIDATION', { email, startLoginRequest, deviceToken: 'too short' }],
      ['LK_VALIDATION', { email, startLoginRequest, deviceToken: null }],
      ['LK_INVALID_EMAIL', { email: `${email},other@example.com`, startLoginRequest }],
    ];
    // From one address, more than every limit it has; and from as many addresses as the account allows.
    const one = loopbackAddress(5, 1);
    for (let round = 0; round < 3; round++) {
      for (const [code, body] of refusals) {
        const answer = await postFrom(one, server.url, '/v1/session/login/start', body);
        expect([answer.status, answer.body.code]).toEqual([400, code]);
      }
    }
    await inParallel(SMALL.loginPerAccount.max + 1, 10, async (i) => {
      for (const [code, body] of refusals) {
        const answer = await postFrom(loopbackAddress(5, i + 2), server.url, '/v1/session/login/start', body);
        expect([answer.status, answer.body.code]).toEqual([400, code]);
      }
    });
    // A KE3 of the wrong length is refused too, and does not even use up the attempt.
    const { clientLoginState, startLoginRequest: ke1 } = opaque.client.startLogin({ password });
    const started = await postFrom(one, server.url, '/v1/session/login/start', { email, startLoginRequest: ke1 });
    const shortKe3 = await postFrom(one, server.url, '/v1/session/login/finish', {
      loginId: started.body.loginId,
      finishLoginRequest: randomBytes(63).toString('base64url'),
    });
    expect([shortKe3.status, shortKe3.body.code]).toEqual([400, 'LK_OPAQUE_MESSAGE_INVALID']);
    const opened = opaque.client.finishLogin({
      clientLoginState,
      loginResponse: started.body.loginResponse as string,
      password,
      keyStretching: TEST_KEY_STRETCHING,
    });
    const finished = await postFrom(one, server.url, '/v1/session/login/finish', {
      loginId: started.body.loginId,
      finishLoginRequest: opened?.finishLoginRequest,
    });
    expect(finished.status).toBe(200);
    // Every limit of that address and that account still has all its room: as many wrong guesses as
    // the (account, address) limit allows are answered, from the address that sent all the garbage.
    for (let i = 0; i < SMALL.loginPerAccountAddress.max; i++) {
      expect((await strangerGuess(server, one, email, `guess ${i}`)).answered).toBe(true);
    }
    expect((await strangerGuess(server, one, email, 'one too many')).answered).toBe(false);
  });

  it('lets a logged-in owner reauthenticate, change the password and delete the account while strangers hammer the email', async () => {
    const email = 'hammered@example.com';
    await createVerifiedAccount(server, email, 'old password');
    const laptop = await clientFrom(server, '127.22.0.1').logIn(email, 'old password');
    const phone = await clientFrom(server, '127.22.0.1').logIn(email, 'old password');
    await inParallel(SMALL.loginPerAccount.max + 8, 10, async (i) => {
      await strangerGuess(server, loopbackAddress(6, i + 1), email, `guess ${i}`);
    });
    expect(await codeOf(clientFrom(server, '127.22.0.4').logIn(email, 'old password'))).toBe('LK_RATE_LIMITED');

    await laptop.reauthenticate('old password');
    expect(await laptop.changePassword('old password', 'new password')).toEqual({ revokedSessions: 1 });
    // The change ends the device tokens of every other login, and keeps this session's.
    expect(
      await codeOf(
        clientFrom(server, '127.22.0.1').logIn(email, 'new password', {
          deviceToken: phone.state.deviceToken as string,
        }),
      ),
    ).toBe('LK_RATE_LIMITED');
    const back = await clientFrom(server, '127.22.0.1').logIn(email, 'new password', {
      deviceToken: laptop.state.deviceToken as string,
    });
    await laptop.deleteAccount('new password');
    expect(await codeOf(laptop.account())).toBe('LK_UNAUTHORIZED');
    expect(await codeOf(back.account())).toBe('LK_UNAUTHORIZED');
  });

  it('limits reauthentication per session, apart from logins and from the other sessions', async () => {
    const email = 'reauth@example.com';
    await createVerifiedAccount(server, email, 'the password');
    const session: Session = await clientFrom(server, '127.23.0.1').logIn(email, 'the password');
    const other: Session = await clientFrom(server, '127.23.0.1').logIn(email, 'the password');
    // Successful reauthentications take their count back, however many.
    for (let i = 0; i < SMALL.reauthPerSession.max + 2; i++) await session.reauthenticate('the password');
    for (let i = 0; i < SMALL.reauthPerSession.max; i++) {
      expect(await codeOf(session.reauthenticate('wrong password'))).toBe('LK_LOGIN_FAILED');
    }
    const error = await session.reauthenticate('the password').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LatchkeyError);
    expect((error as LatchkeyError).code).toBe('LK_RATE_LIMITED');
    expect((error as LatchkeyError).details?.retryAfterSeconds).toBeGreaterThan(0);
    expect(await codeOf(session.deleteAccount('the password'))).toBe('LK_RATE_LIMITED');
    // Another session of the account, and logins, are not held back by it.
    await other.reauthenticate('the password');
    await clientFrom(server, '127.23.0.1').logIn(email, 'the password');
    // Nor is reauthentication by the login limits: the account's are full of strangers' guesses now.
    await inParallel(SMALL.loginPerAccount.max + 2, 10, async (i) => {
      await strangerGuess(server, loopbackAddress(7, i + 1), email, `guess ${i}`);
    });
    await other.reauthenticate('the password');
  });
});
