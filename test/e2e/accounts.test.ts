import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LatchkeyClient, LatchkeyError, type Session } from '@latchkey/client';
import {
  deriveSessionSecrets,
  type ExportKey,
  fromBase64Url,
  type KB,
  type KeyStretchingConfig,
  openKeysBundle,
  type RegistrationStart,
  type SessionKey,
  toBase64Url,
  unwrapKB,
} from '@latchkey/core';
import { buildApp, connect, DEFAULTS, type Mailer, type MailMessage, openStore } from '@latchkey/server';
import * as opaque from '@serenity-kit/opaque';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotDatabase } from '../support/db-snapshot.js';
import { codeOf } from '../support/errors.js';
import { beginRawLogin, postJson } from '../support/raw-login.js';
import { createVerifiedAccount, startTestServer, TEST_KEY_STRETCHING, type TestServer } from '../support/server.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

await opaque.ready;

describe('accounts over HTTP', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => server.close());

  it('refuses login until the email is verified, and verification codes work once', async () => {
    const client = server.client();
    const before = server.smtp.messages.length;
    await client.signUp('unverified@example.com', 'password one');
    expect(await codeOf(client.logIn('unverified@example.com', 'password one'))).toBe('LK_ACCOUNT_UNVERIFIED');
    const code = await server.smtp.codeFor('unverified@example.com', { after: before });
    await client.verifyEmail('unverified@example.com', code);
    expect(await codeOf(client.verifyEmail('unverified@example.com', code))).toBe('LK_CODE_INVALID');
    const session = await client.logIn('unverified@example.com', 'password one');
    expect(session.kB).toHaveLength(32);
  });

  it('refuses a second account for a verified email, but replaces an unverified one', async () => {
    await createVerifiedAccount(server, 'taken@example.com', 'password one');
    expect(await codeOf(server.client().signUp('Taken@Example.com', 'password two'))).toBe('LK_EMAIL_TAKEN');

    const client = server.client();
    const first = await client.signUp('twice@example.com', 'first password');
    const before = server.smtp.messages.length;
    const second = await client.signUp('twice@example.com', 'second password');
    expect(second.accountId).not.toBe(first.accountId);
    await client.verifyEmail('twice@example.com', await server.smtp.codeFor('twice@example.com', { after: before }));
    expect(await codeOf(client.logIn('twice@example.com', 'first password'))).toBe('LK_LOGIN_FAILED');
    await client.logIn('twice@example.com', 'second password');
  });

  it('answers a wrong password and an unknown email alike, with LK_LOGIN_FAILED', async () => {
    const { client } = await createVerifiedAccount(server, 'wrongpw@example.com', 'the right one');
    expect(await codeOf(client.logIn('wrongpw@example.com', 'the wrong one'))).toBe('LK_LOGIN_FAILED');
    expect(await codeOf(client.logIn('nobody-here@example.com', 'the right one'))).toBe('LK_LOGIN_FAILED');
  });

  it('burns a code after five wrong guesses: then the right one is refused too', async () => {
    const client = server.client();
    const before = server.smtp.messages.length;
    await client.signUp('guess@example.com', 'password one');
    const code = await server.smtp.codeFor('guess@example.com', { after: before });
    const wrong = code === '00000000' ? '11111111' : '00000000';
    for (let i = 0; i < 5; i++)
      expect(await codeOf(client.verifyEmail('guess@example.com', wrong))).toBe('LK_CODE_INVALID');
    expect(await codeOf(client.verifyEmail('guess@example.com', code))).toBe('LK_CODE_ATTEMPTS_EXHAUSTED');
  });

  it('lists sessions, revokes one, and logs out wiping the keys', async () => {
    const { client } = await createVerifiedAccount(server, 'sessions@example.com', 'password one');
    const laptop = await client.logIn('sessions@example.com', 'password one', { deviceName: 'laptop' });
    const phone = await client.logIn('sessions@example.com', 'password one', { deviceName: 'phone' });
    const listed = await laptop.listSessions();
    expect(listed.map((s) => [s.deviceName, s.current])).toEqual([
      ['laptop', true],
      ['phone', false],
    ]);
    await laptop.revokeSession(phone.state.sessionId);
    expect(await codeOf(phone.account())).toBe('LK_UNAUTHORIZED');
    expect(await codeOf(laptop.revokeSession(phone.state.sessionId))).toBe('LK_SESSION_NOT_FOUND');

    const kB = laptop.kB;
    await laptop.logOut();
    expect(kB.every((b) => b === 0)).toBe(true);
    expect(() => laptop.kB).toThrow(expect.objectContaining({ code: 'LK_NOT_LOGGED_IN' }));
    expect(await codeOf(laptop.account())).toBe('LK_UNAUTHORIZED');
  });

  it('changes the password keeping kA and kB, and ends every other session', async () => {
    const { client } = await createVerifiedAccount(server, 'passwd@example.com', 'old password');
    const main = await client.logIn('passwd@example.com', 'old password');
    const other = await client.logIn('passwd@example.com', 'old password');
    const [kA, kB] = [hex(main.kA), hex(main.kB)];

    expect(await codeOf(main.changePassword('not the password', 'new password'))).toBe('LK_LOGIN_FAILED');
    expect(await main.changePassword('old password', 'new password')).toEqual({ revokedSessions: 1 });

    expect(await codeOf(other.account())).toBe('LK_UNAUTHORIZED');
    expect((await main.account()).email).toBe('passwd@example.com');
    expect(await codeOf(client.logIn('passwd@example.com', 'old password'))).toBe('LK_LOGIN_FAILED');
    const again = await client.logIn('passwd@example.com', 'new password');
    expect([hex(again.kA), hex(again.kB)]).toEqual([kA, kB]);
  });

  it('resets the password by emailed code: new kB, kA kept, keysChangedAt moved, all sessions ended', async () => {
    const { client } = await createVerifiedAccount(server, 'reset@example.com', 'forgotten password');
    const before = await client.logIn('reset@example.com', 'forgotten password');
    const [kA, kB, keysChangedAt] = [hex(before.kA), hex(before.kB), before.state.keysChangedAt];

    const sent = server.smtp.messages.length;
    await client.requestReset('reset@example.com');
    await client.requestReset('no-account@example.com'); // answered the same, mails nothing
    const code = await server.smtp.codeFor('reset@example.com', { after: sent });
    expect(server.smtp.messages.slice(sent).some((m) => m.to.includes('no-account@example.com'))).toBe(false);
    expect(await codeOf(client.completeReset('reset@example.com', code, 'short'))).toBe('LK_PASSWORD_TOO_SHORT');
    await client.completeReset('reset@example.com', code, 'remembered password');
    expect(await codeOf(client.completeReset('reset@example.com', code, 'remembered password'))).toBe(
      'LK_CODE_INVALID',
    );

    expect(await codeOf(before.account())).toBe('LK_UNAUTHORIZED');
    expect(await codeOf(client.logIn('reset@example.com', 'forgotten password'))).toBe('LK_LOGIN_FAILED');
    const after = await client.logIn('reset@example.com', 'remembered password');
    expect(hex(after.kA)).toBe(kA);
    expect(hex(after.kB)).not.toBe(kB);
    expect(after.state.keysChangedAt).toBeGreaterThan(keysChangedAt);
  });

  it('ends logins begun under the old password, and unused reset tokens, when the password changes', async () => {
    const { client } = await createVerifiedAccount(server, 'halfway@example.com', 'old password');
    const main = await client.logIn('halfway@example.com', 'old password');

    // A control: a half-done login finishes when nothing changed in between.
    const control = (await beginRawLogin(server.url, 'halfway@example.com', 'old password')).finish;
    expect((await postJson(server.url, '/v1/session/login/finish', control)).status).toBe(200);

    const beforeChange = (await beginRawLogin(server.url, 'halfway@example.com', 'old password')).finish;
    await main.changePassword('old password', 'new password');
    const afterChange = await postJson(server.url, '/v1/session/login/finish', beforeChange);
    expect([afterChange.status, afterChange.body.code]).toEqual([400, 'LK_LOGIN_ATTEMPT_INVALID']);

    // Two reset tokens; the reset done with one ends the other, and a login begun before it.
    const codeFor = async () => {
      const sent = server.smtp.messages.length;
      await client.requestReset('halfway@example.com');
      return server.smtp.codeFor('halfway@example.com', { after: sent });
    };
    const spare = await postJson(server.url, '/v1/account/reset/verify', {
      email: 'halfway@example.com',
      code: await codeFor(),
    });
    expect(spare.status).toBe(200);
    const beforeReset = (await beginRawLogin(server.url, 'halfway@example.com', 'new password')).finish;
    await client.completeReset('halfway@example.com', await codeFor(), 'third password');
    const afterReset = await postJson(server.url, '/v1/session/login/finish', beforeReset);
    expect([afterReset.status, afterReset.body.code]).toEqual([400, 'LK_LOGIN_ATTEMPT_INVALID']);
    const { registrationRequest } = opaque.client.startRegistration({ password: 'fourth password' });
    const reused = await postJson(server.url, '/v1/account/reset/register', {
      resetToken: spare.body.resetToken,
      registrationRequest,
    });
    expect([reused.status, reused.body.code]).toEqual([400, 'LK_RESET_TOKEN_INVALID']);
    await client.logIn('halfway@example.com', 'third password');
  });

  it('refuses a login whose attempt was stored after a password change ended the others', async () => {
    // The race: a login start reads the old record, the change commits (deleting the account's
    // attempts), then the start's attempt is stored. Played out in order: the attempt is taken out of
    // the database as if its insert had not landed yet, and put back after the change.
    const email = 'raced@example.com';
    const { client } = await createVerifiedAccount(server, email, 'old password');
    const main = await client.logIn(email, 'old password');
    const store = await openStore(connect(`sqlite:${join(server.dir, 'latchkey.db')}`));
    try {
      const delayed = async (between: () => Promise<unknown>) => {
        const { finish } = await beginRawLogin(server.url, email, 'old password');
        const attempt = await store.takeLoginAttempt(finish.loginId, Date.now());
        if (attempt === undefined) throw new Error('the login attempt is not in the database');
        await between();
        await store.insertLoginAttempt(attempt);
        return postJson(server.url, '/v1/session/login/finish', finish);
      };
      // A control: put back with nothing changed in between, the attempt finishes.
      expect((await delayed(async () => {})).status).toBe(200);

      const raced = await delayed(() => main.changePassword('old password', 'new password'));
      expect([raced.status, raced.body.code]).toEqual([400, 'LK_LOGIN_ATTEMPT_INVALID']);
      await client.logIn(email, 'new password');
    } finally {
      await store.close();
    }
  });

  it('ends an unused reset code when the password changes, and when a reset completes', async () => {
    const email = 'stale-code@example.com';
    const { client } = await createVerifiedAccount(server, email, 'old password');
    const main = await client.logIn(email, 'old password');
    const mailedCode = async () => {
      const sent = server.smtp.messages.length;
      await client.requestReset(email);
      return server.smtp.codeFor(email, { after: sent });
    };
    const verify = (code: string) => postJson(server.url, '/v1/account/reset/verify', { email, code });

    const beforeChange = await mailedCode();
    await main.changePassword('old password', 'new password');
    const afterChange = await verify(beforeChange);
    expect([afterChange.status, afterChange.body.code]).toEqual([400, 'LK_CODE_INVALID']);

    // One reset code at a time per email: the first is traded for a token (a control: codes work),
    // then a second is mailed, and the reset completed with the token must end the second.
    const traded = await verify(await mailedCode());
    expect(traded.status).toBe(200);
    const resetToken = traded.body.resetToken as string;
    const unused = await mailedCode();
    const kB = new Uint8Array(randomBytes(32)) as KB;
    const { registrationRecord, wrapped, registrationTicket } = await client.register(
      'third password',
      kB,
      async (registrationRequest) => {
        const answer = await postJson(server.url, '/v1/account/reset/register', { resetToken, registrationRequest });
        return answer.body as RegistrationStart;
      },
    );
    const finished = await postJson(server.url, '/v1/account/reset/finish', {
      resetToken,
      registrationRecord,
      wrapKB: toBase64Url(wrapped),
      registrationTicket,
    });
    expect(finished.status).toBe(200);
    const afterReset = await verify(unused);
    expect([afterReset.status, afterReset.body.code]).toEqual([400, 'LK_CODE_INVALID']);
    await client.logIn(email, 'third password');
  });

  it('deletes the account after a password check, and then the account is gone', async () => {
    const { client } = await createVerifiedAccount(server, 'delete-me@example.com', 'password one');
    const session = await client.logIn('delete-me@example.com', 'password one');
    expect(await codeOf(session.deleteAccount('wrong password'))).toBe('LK_LOGIN_FAILED');
    await session.deleteAccount('password one');
    expect(await codeOf(session.account())).toBe('LK_UNAUTHORIZED');
    expect(await codeOf(client.logIn('delete-me@example.com', 'password one'))).toBe('LK_LOGIN_FAILED');
    // The email is free again.
    await createVerifiedAccount(server, 'delete-me@example.com', 'password two');
  });

  it('checks the password length on the client, before anything is sent', async () => {
    const sent = server.smtp.messages.length;
    expect(await codeOf(server.client().signUp('short@example.com', 'seven77'))).toBe('LK_PASSWORD_TOO_SHORT');
    expect(await codeOf(server.client().signUp('not an email', 'long enough'))).toBe('LK_INVALID_EMAIL');
    expect(server.smtp.messages.length).toBe(sent);
  });
});

describe('rate limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      rateLimits: {
        ...DEFAULTS.rateLimits,
        loginPerAccountAddress: { max: 3, windowMs: 60_000 },
        loginPerAddress: { max: 100, windowMs: 60_000 },
        codeSendsPerEmail: { max: 2, windowMs: 60_000 },
        codeSendsPerAddress: { max: 100, windowMs: 60_000 },
      },
    });
  });
  afterAll(async () => server.close());

  it('limits guesses at an account from one address and says when to retry', async () => {
    const { client } = await createVerifiedAccount(server, 'limited@example.com', 'password one');
    // Successful logins take their count back: only guesses that never proved the password count.
    for (let i = 0; i < 3; i++) await client.logIn('limited@example.com', 'password one');
    // A wrong password is caught by the client from KE2 alone (KE3 is never sent): each start is a guess.
    for (let i = 0; i < 3; i++)
      expect(await codeOf(client.logIn('limited@example.com', 'wrong guess'))).toBe('LK_LOGIN_FAILED');
    const error = await client.logIn('limited@example.com', 'password one').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LatchkeyError);
    expect((error as LatchkeyError).code).toBe('LK_RATE_LIMITED');
    expect((error as LatchkeyError).details?.retryAfterSeconds).toBeGreaterThan(0);
    // Another account is unaffected.
    const other = await createVerifiedAccount(server, 'unlimited@example.com', 'password one');
    await other.client.logIn('unlimited@example.com', 'password one');
  });

  it('limits how many codes one email can be sent', async () => {
    const client = server.client();
    await client.signUp('mailbomb@example.com', 'password one'); // first code
    await client.resendVerification('mailbomb@example.com'); // second
    expect(await codeOf(client.resendVerification('mailbomb@example.com'))).toBe('LK_RATE_LIMITED');
  });

  it('keeps counting mails when a sign-up replaces an unverified account, and a refused one changes nothing', async () => {
    const client = server.client();
    const sent = server.smtp.messages.length;
    await client.signUp('again@example.com', 'password one'); // first code
    const { accountId } = await client.signUp('again@example.com', 'password two'); // second, replacing
    expect(await codeOf(client.signUp('again@example.com', 'password three'))).toBe('LK_RATE_LIMITED');
    expect(server.smtp.messages.slice(sent).filter((m) => m.to.includes('again@example.com'))).toHaveLength(2);
    // The second sign-up stands: its code verifies it and its password logs in.
    await client.verifyEmail('again@example.com', await server.smtp.codeFor('again@example.com', { after: sent }));
    const session = await client.logIn('again@example.com', 'password two');
    expect(session.accountId).toBe(accountId);
  });
});

describe('rate limits per address', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      rateLimits: {
        ...DEFAULTS.rateLimits,
        loginPerAccountAddress: { max: 100, windowMs: 60_000 },
        loginPerAccount: { max: 100, windowMs: 60_000 },
        loginPerAddress: { max: 4, windowMs: 60_000 },
        codeSendsPerEmail: { max: 100, windowMs: 60_000 },
        codeSendsPerAddress: { max: 5, windowMs: 60_000 },
      },
    });
  });
  afterAll(async () => server.close());

  it('limits login attempts from one address across accounts', async () => {
    const { client } = await createVerifiedAccount(server, 'first@example.com', 'password one');
    await createVerifiedAccount(server, 'second@example.com', 'password two');
    await client.logIn('first@example.com', 'password one');
    expect(await codeOf(client.logIn('second@example.com', 'wrong guess'))).toBe('LK_LOGIN_FAILED');
    expect(await codeOf(client.logIn('nobody@example.com', 'wrong guess'))).toBe('LK_LOGIN_FAILED');
    await client.logIn('second@example.com', 'password two');
    // The fifth attempt from 127.0.0.1, whichever account it names, is refused before OPAQUE runs.
    const error = await client.logIn('first@example.com', 'password one').catch((e: unknown) => e);
    expect((error as LatchkeyError).code).toBe('LK_RATE_LIMITED');
    expect((error as LatchkeyError).details?.retryAfterSeconds).toBeGreaterThan(0);
  });

  it('limits code mails from one address across emails, and answers alike whether an account exists', async () => {
    const client = server.client();
    const sent = server.smtp.messages.length;
    // Two sign-ups above made two mails; three more asks (one for nobody) reach the limit of five.
    await client.requestReset('first@example.com');
    await client.requestReset('nobody-here@example.com');
    await client.resendVerification('second@example.com'); // verified: nothing to send, still counted
    for (const ask of [
      client.requestReset('first@example.com'),
      client.requestReset('nobody-at-all@example.com'),
      client.resendVerification('someone@example.com'),
      client.signUp('sixth@example.com', 'password six'),
    ]) {
      expect(await codeOf(ask)).toBe('LK_RATE_LIMITED');
    }
    // Reset mails go out after the answer: wait for the one, then check it is the only one.
    await server.smtp.codeFor('first@example.com', { after: sent });
    expect(server.smtp.messages.slice(sent).map((m) => m.to)).toEqual([['first@example.com']]);
  });
});

describe('sign-ups refused as taken', () => {
  let server: TestServer;
  beforeAll(async () => {
    const frozen = Date.now(); // one rate-limit window throughout, wherever the minute turns
    server = await startTestServer(
      {
        rateLimits: {
          ...DEFAULTS.rateLimits,
          codeSendsPerEmail: { max: 100, windowMs: 60_000 },
          codeSendsPerAddress: { max: 3, windowMs: 60_000 },
        },
      },
      { now: () => frozen },
    );
  });
  afterAll(async () => server.close());

  it('count against the asking address, and change nothing else', async () => {
    const email = 'holder@example.com';
    await createVerifiedAccount(server, email, 'password one'); // the first mail from 127.0.0.1
    const database = join(server.dir, 'latchkey.db');
    const before = snapshotDatabase(database);
    expect(await codeOf(server.client().signUp(email, 'password two'))).toBe('LK_EMAIL_TAKEN'); // the second
    const after = snapshotDatabase(database);
    const bucket = 'code:addr:127.0.0.1';
    const hitsIn = (snapshot: typeof before) =>
      snapshot['rate_limits']?.find((row) => row['bucket'] === bucket)?.['hits'];
    expect([hitsIn(before), hitsIn(after)]).toEqual([1, 2]);
    // The sign-up's register/start is counted in its own limits (issue 8) before the finish is refused.
    const startBuckets = ['register:addr:127.0.0.1', `register:email:${email}`];
    const startHits = (snapshot: typeof before) =>
      startBuckets.map((name) => snapshot['rate_limits']?.find((row) => row['bucket'] === name)?.['hits']);
    expect([startHits(before), startHits(after)]).toEqual([
      [1, 1],
      [2, 2],
    ]);
    const withoutBucket = (snapshot: typeof before) => ({
      ...snapshot,
      rate_limits: snapshot['rate_limits']?.filter(
        (row) => row['bucket'] !== bucket && !startBuckets.includes(row['bucket'] as string),
      ),
    });
    expect(withoutBucket(after)).toEqual(withoutBucket(before));

    expect(await codeOf(server.client().signUp('Holder@Example.com', 'password three'))).toBe('LK_EMAIL_TAKEN');
    // The fourth ask from this address is over the limit, taken email or not.
    expect(await codeOf(server.client().signUp(email, 'password four'))).toBe('LK_RATE_LIMITED');
    expect(await codeOf(server.client().signUp('free@example.com', 'password four'))).toBe('LK_RATE_LIMITED');
  });
});

/**
 * Reset and resend answer alike whether or not the email has an account, so their mail is sent after
 * the answer: neither its time nor an SMTP failure shows. Sign-up still waits for its mail. A mailer
 * the test holds or fails on demand stands in for SMTP.
 */
describe('code mails sent after the answer', () => {
  const PASSWORD = 'password one';
  let mode: 'send' | 'hold' | 'fail' = 'send';
  const sent: MailMessage[] = [];
  const failed: MailMessage[] = [];
  const held: { message: MailMessage; release(): void }[] = [];
  const mailer: Mailer = {
    async send(message) {
      if (mode === 'fail') {
        failed.push(message);
        throw new Error('SMTP unreachable');
      }
      if (mode === 'hold') await new Promise<void>((release) => held.push({ message, release }));
      sent.push(message);
    },
    close() {},
  };
  const logLines: string[] = [];
  let app: FastifyInstance;
  let url: string;
  let dir: string;
  const codeIn = (message: MailMessage | undefined) => /code: (\d{8})/.exec(message?.text ?? '')?.[1] ?? '';
  /** The request's answer, or a failure naming it if it takes longer than a mail-free request could. */
  const promptly = async <T>(what: string, request: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} waited for its mail`)), 5_000);
    });
    try {
      return await Promise.race([request, late]);
    } finally {
      clearTimeout(timer);
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-mail-'));
    app = await buildApp({
      config: {
        ...DEFAULTS,
        port: 0,
        databaseUrl: `sqlite:${join(dir, 'latchkey.db')}`,
        masterKeyFile: join(dir, 'master.key'),
        keyStretching: TEST_KEY_STRETCHING,
        logLevel: 'error',
      },
      mailer,
      logStream: { write: (line) => logLines.push(line) },
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const client = new LatchkeyClient({ serverUrl: url, keyStretching: TEST_KEY_STRETCHING });
    await client.signUp('verified@example.com', PASSWORD);
    await client.verifyEmail('verified@example.com', codeIn(sent.at(-1)));
    await client.signUp('unverified@example.com', PASSWORD);
  });
  afterAll(async () => {
    for (const { release } of held) release();
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers reset and resend for an existing account while its mail is still on its way', async () => {
    mode = 'hold';
    const reset = await promptly('reset', postJson(url, '/v1/account/reset/start', { email: 'verified@example.com' }));
    expect([reset.status, reset.body]).toEqual([200, { accepted: true }]);
    const resend = await promptly(
      'resend',
      postJson(url, '/v1/account/verify/resend', { email: 'unverified@example.com' }),
    );
    expect([resend.status, resend.body]).toEqual([200, { accepted: true }]);
    expect(held.map((h) => h.message.to)).toEqual(['verified@example.com', 'unverified@example.com']);

    // The codes were stored before the answers: the held mails carry codes that work.
    mode = 'send';
    const [resetMail, verifyMail] = held.splice(0);
    resetMail?.release();
    verifyMail?.release();
    const traded = await postJson(url, '/v1/account/reset/verify', {
      email: 'verified@example.com',
      code: codeIn(resetMail?.message),
    });
    expect(traded.status).toBe(200);
    const verified = await postJson(url, '/v1/account/verify', {
      email: 'unverified@example.com',
      code: codeIn(verifyMail?.message),
    });
    expect([verified.status, verified.body]).toEqual([200, { verified: true }]);
  });

  it('answers reset and resend alike when the mail fails, logging the failure without the code', async () => {
    const client = new LatchkeyClient({ serverUrl: url, keyStretching: TEST_KEY_STRETCHING });
    await client.signUp('still-unverified@example.com', PASSWORD);
    mode = 'fail';
    const reset = await postJson(url, '/v1/account/reset/start', { email: 'verified@example.com' });
    expect([reset.status, reset.body]).toEqual([200, { accepted: true }]);
    const resend = await postJson(url, '/v1/account/verify/resend', { email: 'still-unverified@example.com' });
    expect([resend.status, resend.body]).toEqual([200, { accepted: true }]);
    // Sign-up still waits for its mail, and says when it could not be sent.
    expect(await codeOf(client.signUp('new@example.com', PASSWORD))).toBe('LK_INTERNAL');
    mode = 'send';

    const deadline = Date.now() + 5_000;
    const failures = () =>
      logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e.msg === 'mail not sent');
    while (failures().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(failures().map((e) => e.mailTo)).toEqual(['verified@example.com', 'still-unverified@example.com']);
    expect(failed).toHaveLength(3);
    for (const message of failed) expect(logLines.join('\n')).not.toContain(codeIn(message));
  });

  it('closes only once a mail still on its way has gone', async () => {
    mode = 'hold';
    const reset = await postJson(url, '/v1/account/reset/start', { email: 'verified@example.com' });
    expect(reset.status).toBe(200);
    expect(held).toHaveLength(1);
    let closed = false;
    const closing = app.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(closed).toBe(false);
    const before = sent.length;
    for (const { release } of held.splice(0)) release();
    await closing;
    expect(sent.slice(before).map((m) => m.to)).toEqual(['verified@example.com']);
  });
});

describe('production key stretching', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ keyStretching: DEFAULTS.keyStretching });
  });
  afterAll(async () => server.close());

  /**
   * A login made by hand with exactly `keyStretching`: KE2 verifies (and the export key opens kB) only
   * if the account's OPAQUE record was built from the password stretched with those same parameters.
   */
  async function loginWith(email: string, password: string, keyStretching: KeyStretchingConfig) {
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
    const started = await postJson(server.url, '/v1/session/login/start', { email, startLoginRequest });
    expect(started.status).toBe(200);
    const loginResponse = started.body.loginResponse as string;
    const login = opaque.client.finishLogin({ clientLoginState, loginResponse, password, keyStretching });
    if (login === undefined) return undefined;
    const { loginId } = started.body as { loginId: string };
    const finished = await postJson(server.url, '/v1/session/login/finish', {
      loginId,
      finishLoginRequest: login.finishLoginRequest,
    });
    expect(finished.status).toBe(200);
    const { bundleKey } = deriveSessionSecrets(fromBase64Url(login.sessionKey) as SessionKey);
    const { wrappedKB } = openKeysBundle(bundleKey, fromBase64Url(finished.body.keysBundle as string));
    return unwrapKB(wrappedKB, fromBase64Url(login.exportKey) as ExportKey);
  }

  it('signs up and logs in with the default Argon2id parameters', async () => {
    // The default is RFC 9106 §4's second recommended option (m = 2^16 KiB, t = 3, p = 4), which
    // @serenity-kit/opaque calls memory-constrained; the server advertises it, the SDK takes it up.
    expect(DEFAULTS.keyStretching).toBe('memory-constrained');
    const config = await fetch(new URL('/v1/config', server.url));
    expect(((await config.json()) as { keyStretching: unknown }).keyStretching).toBe('memory-constrained');
    const { client } = await createVerifiedAccount(server, 'argon@example.com', 'a real password');
    expect(await client.keyStretching()).toBe('memory-constrained');
    const session: Session = await client.logIn('argon@example.com', 'a real password');
    expect(session.kB).toHaveLength(32);
    // What the SDK signed up with, read from the record itself: the parameters spelled out open it, and
    // unwrap the very kB the SDK's login holds; the test servers' cheap ones do not.
    const argon2id = { 'argon2id-custom': { memory: 65_536, iterations: 3, parallelism: 4 } };
    expect(await loginWith('argon@example.com', 'a real password', argon2id)).toEqual(session.kB);
    expect(await loginWith('argon@example.com', 'a real password', TEST_KEY_STRETCHING)).toBeUndefined();
  });
});
