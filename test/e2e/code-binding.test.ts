import { createHash } from 'node:crypto';
import { type ExportKey, fromBase64Url, type KB, toBase64Url, wrapKB } from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../support/postgres.js';
import { startTestServer, TEST_KEY_STRETCHING, type TestServer, UNLIMITED_RATE_LIMITS } from '../support/server.js';

/**
 * Issue 8: a verification code is bound to the account it was mailed for. Sign-up writes the account,
 * then, in a step of its own, the code, keyed by email. A re-registration of the same email (an
 * unverified account is replaced by a new sign-up) that lands between the two replaces the victim's
 * account with the attacker's; the victim's code is written after, and is the one the victim gets. When
 * the code's MAC covered purpose, email and code only, that code verified the attacker's account: an
 * account on the victim's address whose password the attacker chose. Now the MAC covers the account id.
 *
 * The window is forced open, deterministically, the way it opens under load with two nodes on one
 * PostgreSQL: the victim's node has every pooled connection busy when its sign-up transaction commits,
 * so the sign-up waits for a connection before writing its code, while the attacker's sign-up runs on
 * the other node. The test holds the locks that keep node 1 busy and lets go of them in order.
 */

await opaque.ready;

const EMAIL = 'victim@binding.example';
const FILLER_EMAIL = 'filler@binding.example';
/** Node 1 trusts 127.0.0.1 as a proxy: the fillers come "from" this address, with a bucket of their own. */
const FILLER_ADDRESS = '192.0.2.7';
/** pg.Pool's `max` in packages/server/src/store/database.ts. */
const NODE_POOL_SIZE = 10;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function post(server: TestServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> } satisfies Answer;
}

/** A sign-up's finish body for `email` through `server`, made but not sent. */
async function signUpBody(server: TestServer, email: string, password: string) {
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const start = await post(server, '/v1/account/register/start', { email, registrationRequest });
  const { registrationRecord, exportKey } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: String(start.body.registrationResponse),
    password,
    keyStretching: TEST_KEY_STRETCHING,
  });
  const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  const wrapped = wrapKB(random(32) as KB, fromBase64Url(exportKey) as ExportKey, random(12));
  return { email, registrationRecord, wrapKB: toBase64Url(wrapped), registrationTicket: start.body.registrationTicket };
}

/** The advisory lock the store takes on an email (kysely-store.ts, emailLockKey), spelled out again. */
function emailLockKey(email: string): string {
  return createHash('sha256').update(`latchkey/email/${email}`).digest().readBigInt64BE(0).toString();
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a verification code and a sign-up racing the one it was mailed for (postgres, two nodes)', () => {
  let node1: TestServer;
  let node2: TestServer;
  /** The test's own connections: one reads, one holds the email's lock, one holds the fillers' bucket row. */
  const clients: pg.Client[] = [];
  let read: pg.Client;
  let emailHolder: pg.Client;
  let rowHolder: pg.Client;

  beforeAll(async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'), 'code_binding');
    node1 = await startTestServer({ databaseUrl, trustProxy: ['127.0.0.1'], rateLimits: UNLIMITED_RATE_LIMITS });
    // The second node of the same deployment: same database, same master key.
    node2 = await startTestServer({
      databaseUrl,
      masterKeyFile: node1.config.masterKeyFile,
      rateLimits: UNLIMITED_RATE_LIMITS,
    });
    for (let i = 0; i < 3; i++) {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      clients.push(client);
    }
    [read, emailHolder, rowHolder] = clients as [pg.Client, pg.Client, pg.Client];
  });
  afterAll(async () => {
    for (const client of clients) await client.end();
    await node1?.close();
    await node2?.close();
  });

  const accounts = async () =>
    (await read.query('SELECT id, verified_at FROM accounts WHERE email = $1', [EMAIL])).rows as Array<{
      id: string;
      verified_at: unknown;
    }>;
  const codeIds = async () =>
    (await read.query("SELECT id FROM codes WHERE email = $1 AND purpose = 'verify'", [EMAIL])).rows.map((r) =>
      String(r.id),
    );
  const waitingOnLocks = async () =>
    Number(
      (
        await read.query(
          "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
      ).rows[0]?.n,
    );

  it("the victim's code does not verify the attacker's account that replaced the victim's", async () => {
    const victimBody = await signUpBody(node1, EMAIL, 'the victim password');
    const attackerBody = await signUpBody(node2, EMAIL, 'the attacker password');
    const filler = () =>
      post(node1, '/v1/account/verify/resend', { email: FILLER_EMAIL }, { 'x-forwarded-for': FILLER_ADDRESS });
    expect((await filler()).status).toBe(200); // makes the fillers' bucket row, for the holder to lock

    // 1. The victim's sign-up (node 1) waits in its transaction, on the email's lock, holding a connection.
    await emailHolder.query('SELECT pg_advisory_lock($1::bigint)', [emailLockKey(EMAIL)]);
    const victimSignUp = post(node1, '/v1/account/register/finish', victimBody);
    await until(async () => (await waitingOnLocks()) === 1, "the victim's sign-up waits on the email's lock");

    // 2. Node 1's other connections wait on the fillers' bucket row; more fillers queue for a connection.
    await rowHolder.query('BEGIN');
    const locked = await rowHolder.query('SELECT bucket FROM rate_limits WHERE bucket = $1 FOR UPDATE', [
      `code:addr:${FILLER_ADDRESS}`,
    ]);
    expect(locked.rows).toHaveLength(1);
    let arrived = 0;
    node1.app.server.on('request', (request: { headers: Record<string, unknown> }) => {
      if (request.headers['x-forwarded-for'] === FILLER_ADDRESS) arrived++;
    });
    const fillers = Array.from({ length: 2 * NODE_POOL_SIZE }, filler);
    await until(async () => (await waitingOnLocks()) === NODE_POOL_SIZE, "node 1's pool is all waiting");
    await until(async () => arrived === fillers.length, 'every filler reached node 1');
    // From its arrival a filler's first step is the bucket's count, which queues for a connection.
    await new Promise((resolve) => setTimeout(resolve, 200));

    // 3. The victim's account commits; the connection it frees goes to a queued filler, so its code waits.
    await emailHolder.query('SELECT pg_advisory_unlock($1::bigint)', [emailLockKey(EMAIL)]);
    await until(async () => (await accounts()).length === 1, "the victim's account is written");
    const [victim] = await accounts();
    expect(await codeIds()).toEqual([]);

    // 4. The attacker's sign-up for the same email (node 2) replaces the unverified account, and mails a code.
    const attacker = await post(node2, '/v1/account/register/finish', attackerBody);
    expect(attacker.status).toBe(200);
    expect(await accounts()).toEqual([{ id: attacker.body.accountId, verified_at: null }]);
    const attackerCodeIds = await codeIds();
    expect(attackerCodeIds).toHaveLength(1);

    // 5. Node 1 frees up: the victim's sign-up writes its code (replacing the attacker's) and mails it.
    await rowHolder.query('ROLLBACK');
    expect((await victimSignUp).body).toMatchObject({ accountId: victim?.id });
    for (const answer of await Promise.all(fillers)) expect(answer.status).toBe(200);
    const codesNow = await codeIds();
    expect(codesNow).toHaveLength(1);
    expect(codesNow).not.toEqual(attackerCodeIds); // the race happened: the stored code is the victim's
    const victimCode = await node1.smtp.codeFor(EMAIL);
    expect(victimCode).not.toBe(await node2.smtp.codeFor(EMAIL));

    // 6. The victim types the code from their mail. It was mailed for their account, which is gone.
    const verify = await post(node1, '/v1/account/verify', { email: EMAIL, code: victimCode });
    expect(verify).toEqual({ status: 400, body: expect.objectContaining({ code: 'LK_CODE_INVALID' }) });
    expect(await accounts()).toEqual([{ id: attacker.body.accountId, verified_at: null }]);
  });
});
