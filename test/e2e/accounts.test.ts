import { LatchkeyError, type Session } from '@latchkey/client';
import * as opaque from '@serenity-kit/opaque';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf } from '../support/errors.js';
import { beginRawLogin, postJson } from '../support/raw-login.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

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

  it('burns a code after five wrong guesses', async () => {
    const client = server.client();
    const before = server.smtp.messages.length;
    await client.signUp('guess@example.com', 'password one');
    const code = await server.smtp.codeFor('guess@example.com', { after: before });
    const wrong = code === '00000000' ? '11111111' : '00000000';
    for (let i = 0; i < 5; i++)
      expect(await codeOf(client.verifyEmail('guess@example.com', wrong))).toBe('LK_CODE_INVALID');
    expect(await codeOf(client.verifyEmail('guess@example.com', code))).toBe('LK_CODE_INVALID');
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
        loginPerAccount: { max: 3, windowMs: 60_000 },
        loginPerAddress: { max: 100, windowMs: 60_000 },
        codeSendsPerEmail: { max: 2, windowMs: 60_000 },
        codeSendsPerAddress: { max: 100, windowMs: 60_000 },
      },
    });
  });
  afterAll(async () => server.close());

  it('limits login attempts per account and says when to retry', async () => {
    const { client } = await createVerifiedAccount(server, 'limited@example.com', 'password one');
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
    expect(server.smtp.messages.slice(sent).map((m) => m.to)).toEqual([['first@example.com']]);
  });
});

describe('production key stretching', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ keyStretching: 'memory-constrained' });
  });
  afterAll(async () => server.close());

  it('signs up and logs in with the default Argon2id parameters', async () => {
    const { client } = await createVerifiedAccount(server, 'argon@example.com', 'a real password');
    const session: Session = await client.logIn('argon@example.com', 'a real password');
    expect(session.kB).toHaveLength(32);
  });
});
