import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asyncLatchkeyErrorOf, codeOf } from '../support/errors.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * An unverified sign-up can be replaced by anyone who signs the same email up again (until its owner
 * proves the mailbox, it holds nothing worth keeping). The attack: the victim signs up; the attacker
 * signs the victim's email up again with a password of their own, which mails a new code to the
 * victim; the victim, seeing the newest mail, types that code. It is bound to the attacker's sign-up,
 * and before, it verified it: an account on the victim's address whose password the attacker chose.
 * Now a verification names the sign-up it is for (the SDK sends the account id its sign-up returned),
 * and a code mailed for another sign-up is refused with LK_SIGNUP_REPLACED, and used up. Over HTTP,
 * with the real SMTP test server.
 */

const EMAIL = 'reregistered@example.com';
const VICTIM_PASSWORD = 'the victim chose this';
const ATTACKER_PASSWORD = 'the attacker chose this';

describe('a code mailed for a sign-up that replaced the one verifying', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  /** The newest code in the mailbox, mailed after `after` messages. */
  const newestCode = (after: number) => server.smtp.codeFor(EMAIL, { after });

  it('does not verify the attacker’s account when the victim types it', async () => {
    const victim = server.client();
    const attacker = server.client();
    let before = server.smtp.messages.length;
    const { accountId: victimsAccount } = await victim.signUp(EMAIL, VICTIM_PASSWORD);
    const victimsCode = await newestCode(before);
    before = server.smtp.messages.length;
    const { accountId: attackersAccount } = await attacker.signUp(EMAIL, ATTACKER_PASSWORD);
    expect(attackersAccount).not.toBe(victimsAccount);
    const attackersCode = await newestCode(before);

    // The victim's own code went with the sign-up it was for.
    expect(await codeOf(victim.verifyEmail(EMAIL, victimsCode))).toBe('LK_CODE_INVALID');
    const refused = await asyncLatchkeyErrorOf(victim.verifyEmail(EMAIL, attackersCode));
    expect(refused.code).toBe('LK_SIGNUP_REPLACED');
    // Used up: the code that reached the victim's mailbox verifies nothing, for anyone, any more.
    expect(await codeOf(attacker.verifyEmail(EMAIL, attackersCode))).toBe('LK_CODE_INVALID');
    // Nothing was verified: the attacker's password opens no account.
    expect(await codeOf(attacker.logIn(EMAIL, ATTACKER_PASSWORD))).toBe('LK_ACCOUNT_UNVERIFIED');
  });

  it('is refused over HTTP for the sign-up the request names, before it could verify another', async () => {
    let before = server.smtp.messages.length;
    const { accountId: victimsAccount } = await server.client().signUp(EMAIL, VICTIM_PASSWORD);
    await newestCode(before);
    before = server.smtp.messages.length;
    await server.client().signUp(EMAIL, ATTACKER_PASSWORD);
    const code = await newestCode(before);
    const response = await fetch(`${server.url}/v1/account/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: EMAIL, code, accountId: victimsAccount }),
    });
    expect(response.status).toBe(409);
    expect(((await response.json()) as { code: string }).code).toBe('LK_SIGNUP_REPLACED');
  });

  it('lets the victim sign up again and verify with the newest code', async () => {
    const victim = server.client();
    const before = server.smtp.messages.length;
    await victim.signUp(EMAIL, VICTIM_PASSWORD);
    await victim.verifyEmail(EMAIL, await newestCode(before));
    const session = await victim.logIn(EMAIL, VICTIM_PASSWORD);
    await session.logOut();
    expect(await codeOf(server.client().logIn(EMAIL, ATTACKER_PASSWORD))).toBe('LK_LOGIN_FAILED');
  });

  it('still verifies a sign-up whose code is its own when the request names it', async () => {
    const email = 'named@example.com';
    const client = server.client();
    const before = server.smtp.messages.length;
    const { accountId } = await client.signUp(email, VICTIM_PASSWORD);
    const code = await server.smtp.codeFor(email, { after: before });
    const response = await fetch(`${server.url}/v1/account/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, code, accountId }),
    });
    expect({ status: response.status, body: await response.json() }).toEqual({
      status: 200,
      body: { verified: true },
    });
  });
});
