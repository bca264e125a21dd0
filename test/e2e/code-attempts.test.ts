import { join } from 'node:path';
import { ERRORS, isErrorCode } from '@latchkey/core';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, databaseOn } from '../support/backends.js';
import { createVerifiedAccount, startTestServer, type TestServer, UNLIMITED_RATE_LIMITS } from '../support/server.js';

/**
 * Issue 8: an email code allows CODE_MAX_ATTEMPTS (5) comparisons in all, however many guesses arrive
 * at once. Each comparison is counted before it is made, by one conditional increment; a guess that
 * finds the count used up is not compared and is answered `LK_CODE_ATTEMPTS_EXHAUSTED`. The code is
 * then burnt: it stays, counted out, until it expires or a new code replaces it, and the right code is
 * refused like any other. Before the fix the count was read, the MAC compared and the count written in
 * separate statements, so 200 simultaneous guesses were all compared (PostgreSQL left attempts = 200).
 */

const GUESSES = 200;
const PASSWORD = 'code attempts password';

type Query = (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

interface Answer {
  status: number;
  code: string;
}

async function post(server: TestServer, path: string, body: unknown): Promise<Answer> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const parsed = (await response.json().catch(() => ({}))) as { code?: unknown };
  return { status: response.status, code: response.ok ? 'ok' : String(parsed.code) };
}

/** `count` guesses that are all wrong and all different, as a brute force sends them. */
function wrongGuesses(code: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => String((Number(code) + 1 + i) % 100_000_000).padStart(8, '0'));
}

const backends = {
  async sqlite(server: TestServer): Promise<[Query, () => void]> {
    const db = new SqliteDatabase(join(server.dir, 'latchkey.db'), { readonly: true, fileMustExist: true });
    const query: Query = async (text, params = []) =>
      db.prepare(text.replaceAll(/\$\d+/g, '?')).all(...params) as Record<string, unknown>[];
    return [query, () => db.close()];
  },
  async postgres(server: TestServer): Promise<[Query, () => void]> {
    const client = new pg.Client({ connectionString: server.config.databaseUrl });
    await client.connect();
    const query: Query = async (text, params = []) => (await client.query(text, params)).rows;
    return [query, () => void client.end()];
  },
} as const;

describe.each(BACKENDS)('email codes under a flood of guesses (%s)', (backend) => {
  let server: TestServer;
  let query: Query;
  let closeQuery: () => void;
  let emails = 0;

  beforeAll(async () => {
    const databaseUrl = await databaseOn(backend, 'code_attempts');
    // No limit on mails or logins: the code's own count is what is under test.
    server = await startTestServer({ ...databaseUrl, rateLimits: UNLIMITED_RATE_LIMITS });
    [query, closeQuery] = await backends[backend](server);
  });
  afterAll(async () => {
    closeQuery?.();
    await server?.close();
  });

  const flows = {
    /** A sign-up's verification code, and what the right code would have done: verify the account. */
    verify: {
      route: '/v1/account/verify',
      async issue(email: string): Promise<string> {
        const before = server.smtp.messages.length;
        await server.client().signUp(email, PASSWORD);
        return server.smtp.codeFor(email, { after: before });
      },
      async effects(email: string) {
        const rows = await query('SELECT verified_at FROM accounts WHERE email = $1', [email]);
        return rows.map((row) => (row.verified_at === null ? 'unverified' : 'verified'));
      },
    },
    /** A reset code, and what the right code would have done: issue a reset token. */
    reset: {
      route: '/v1/account/reset/verify',
      async issue(email: string): Promise<string> {
        await createVerifiedAccount(server, email, PASSWORD);
        const before = server.smtp.messages.length;
        expect((await post(server, '/v1/account/reset/start', { email })).code).toBe('ok');
        return server.smtp.codeFor(email, { after: before });
      },
      async effects(email: string) {
        const rows = await query(
          'SELECT COUNT(*) AS n FROM reset_tokens t JOIN accounts a ON a.id = t.account_id WHERE a.email = $1',
          [email],
        );
        return [`reset tokens: ${Number(rows[0]?.n)}`];
      },
    },
  } as const;

  it.each(['verify', 'reset'] as const)(
    '%s: 200 simultaneous wrong guesses get 5 comparisons, and the code is burnt',
    async (purpose) => {
      const flow = flows[purpose];
      const email = `${purpose}.${++emails}.${backend}@attempts.example`;
      const code = await flow.issue(email);
      const before = await flow.effects(email);

      const answers = await Promise.all(
        wrongGuesses(code, GUESSES).map((guess) => post(server, flow.route, { email, code: guess })),
      );

      // The database first: it says how many comparisons were counted (the old code let all 200 through).
      const rows = await query('SELECT attempts FROM codes WHERE email = $1 AND purpose = $2', [email, purpose]);
      expect(rows.map((row) => Number(row.attempts))).toEqual([5]);
      // Every answer is a registered refusal with its own status, never a 5xx.
      for (const answer of answers) {
        expect(isErrorCode(answer.code) && ERRORS[answer.code].status === answer.status && answer.status < 500).toBe(
          true,
        );
      }
      const tally = Object.fromEntries(
        ['LK_CODE_INVALID', 'LK_CODE_ATTEMPTS_EXHAUSTED'].map((c) => [c, answers.filter((a) => a.code === c).length]),
      );
      expect(tally).toEqual({ LK_CODE_INVALID: 5, LK_CODE_ATTEMPTS_EXHAUSTED: GUESSES - 5 });

      // Burnt: the right code is refused too, is not compared (the count stays 5), and does nothing.
      expect(await post(server, flow.route, { email, code })).toEqual({
        status: 400,
        code: 'LK_CODE_ATTEMPTS_EXHAUSTED',
      });
      const after = await query('SELECT attempts FROM codes WHERE email = $1 AND purpose = $2', [email, purpose]);
      expect(after.map((row) => Number(row.attempts))).toEqual([5]);
      expect(await flow.effects(email)).toEqual(before);
    },
  );

  it.each(['verify', 'reset'] as const)(
    '%s: the right code on the last comparison still works; the right code counts as a comparison',
    async (purpose) => {
      const flow = flows[purpose];
      const email = `${purpose}.${++emails}.${backend}@attempts.example`;
      const code = await flow.issue(email);
      for (const guess of wrongGuesses(code, 4)) {
        expect(await post(server, flow.route, { email, code: guess })).toEqual({
          status: 400,
          code: 'LK_CODE_INVALID',
        });
      }
      expect((await post(server, flow.route, { email, code })).code).toBe('ok');
      // Used: the row is gone, and the same code again is a code that does not exist.
      expect(await query('SELECT attempts FROM codes WHERE email = $1 AND purpose = $2', [email, purpose])).toEqual([]);
      expect(await post(server, flow.route, { email, code })).toEqual({ status: 400, code: 'LK_CODE_INVALID' });
    },
  );
});
