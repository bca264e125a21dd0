import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  ERRORS,
  type ExportKey,
  fromBase64Url,
  isErrorCode,
  type KB,
  type RegistrationStart,
  toBase64Url,
  wrapKB,
} from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, databaseOn } from '../support/backends.js';
import { freePort } from '../support/free-port.js';
import {
  authorizationUrl,
  Browser,
  beginAuthorization,
  consent,
  encryptKeys,
  KEY_SCOPE,
  REDIRECT,
  registerApps,
  startApp,
} from '../support/oauth.js';
import { beginRawLogin, rawLogin } from '../support/raw-login.js';
import { startTestServer, TEST_KEY_STRETCHING, type TestServer, UNLIMITED_RATE_LIMITS } from '../support/server.js';

/**
 * Issue 7: ordinary races. Every write route the server has, fired N times at once, and the pairs of
 * routes whose rules conflict (an upload and a version delete, an upload and the account's deletion,
 * two sign-ups for one email...), on SQLite and PostgreSQL. The bar is the same for every row: no 5xx,
 * every refusal an `LK_*` code with its registered status, and a database whose invariants hold
 * afterwards (one account per email, a version's count equal to its keys, no row outliving its account,
 * one code per email and purpose). Rows may add their own checks of who won.
 *
 * The table is data: a new write route (devices, registry) adds rows here, and the coverage test fails
 * until every non-GET route the server documents at /docs/json appears in some row.
 */

await opaque.ready;

/** Requests fired at once per row: enough to overlap on two cores, few enough to stay quick. */
const N = 12;
const PASSWORD = 'race password';
const NEW_PASSWORD = 'race password, changed';
const PUBLIC_KEY = 'cHVibGljIGtleSBwdWJsaWMga2V5IHB1YmxpYyBrZXk';
const BACKUP_ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const STORAGE_ALGORITHM = 'm.secret_storage.v1.aes-hmac-sha2';
const ENCRYPTED_SECRET = { iv: 'aXY', ciphertext: 'Y2lwaGVydGV4dA', mac: 'bWFj' };
const ROOM = '!race:example.org';
/** The Matrix-compatible routes' prefix, and their write routes, which /docs does not list. */
const MATRIX = '/_matrix/client/v3';
const MATRIX_WRITES = [
  'POST /room_keys/version',
  'PUT /room_keys/version/{version}',
  'DELETE /room_keys/version/{version}',
  'PUT /room_keys/keys',
  'PUT /room_keys/keys/{roomId}',
  'PUT /room_keys/keys/{roomId}/{sessionId}',
  'DELETE /room_keys/keys',
  'DELETE /room_keys/keys/{roomId}',
  'DELETE /room_keys/keys/{roomId}/{sessionId}',
].map((route) => route.replace(' ', ` ${MATRIX}`));
const MATRIX_VERSION = { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: PUBLIC_KEY } };

const b64 = (bytes: Uint8Array) => toBase64Url(bytes);
const random = (length: number) => new Uint8Array(randomBytes(length));
const range = (count: number) => Array.from({ length: count }, (_, i) => i);

function backedUpKey(index: number, verified = false) {
  return {
    first_message_index: index,
    forwarded_count: 0,
    is_verified: verified,
    session_data: { ephemeral: 'ZXBoZW1lcmFs', ciphertext: b64(random(24)), mac: 'bWFj' },
  };
}

/** An upload of `count` sessions in the race room, named from `first`, each at first index `index`. */
function upload(first: number, count: number, index = 0) {
  const sessions = Object.fromEntries(range(count).map((i) => [`s${first + i}`, backedUpKey(index)]));
  return { rooms: { [ROOM]: { sessions } } };
}

// ---- requests and answers ------------------------------------------------------------------------------

/** One request of a race: `route` is the documented one (`PUT /v1/backup/keys`), `url` the concrete path. */
interface Req {
  route: string;
  url: string;
  body?: unknown;
  token?: string;
  /** A browser's cookies (the OAuth interaction routes are bound to the interaction cookie). */
  cookie?: string;
}

interface Answer {
  route: string;
  status: number;
  body: Record<string, unknown>;
  /** A redirect's target (redirects are not followed: oidc-provider's answer an app's callback URL). */
  location?: string;
}

/** `route` with its `{name}` parameters filled in from `params`, plus `query`: the request's URL. */
function req(
  route: string,
  options: { params?: Record<string, string>; query?: string; body?: unknown; token?: string; cookie?: string } = {},
): Req {
  const path = route.slice(route.indexOf(' ') + 1);
  const filled = path.replaceAll(/\{(\w+)\}/g, (_, name: string) => {
    const value = options.params?.[name];
    if (value === undefined) throw new Error(`${route}: no value for {${name}}`);
    return encodeURIComponent(value);
  });
  return {
    route,
    url: filled + (options.query ?? ''),
    ...(options.body === undefined ? {} : { body: options.body }),
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(options.cookie === undefined ? {} : { cookie: options.cookie }),
  };
}

async function send(server: TestServer, request: Req): Promise<Answer> {
  const method = request.route.slice(0, request.route.indexOf(' '));
  const response = await fetch(`${server.url}${request.url}`, {
    method,
    headers: {
      ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(request.token === undefined ? {} : { authorization: `Bearer ${request.token}` }),
      ...(request.cookie === undefined ? {} : { cookie: request.cookie }),
    },
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
    redirect: 'manual',
  });
  const location = response.headers.get('location');
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { unparsed: text };
  }
  return { route: request.route, status: response.status, body, ...(location === null ? {} : { location }) };
}

/** A set-up request: it must succeed. */
async function must<T = Record<string, unknown>>(server: TestServer, request: Req): Promise<T> {
  const answer = await send(server, request);
  if (answer.status !== 200)
    throw new Error(`set-up ${request.route} → ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body as T;
}

/** Each answer's outcome: 'ok', or its code (`errcode` on the Matrix routes). */
const codes = (answers: Answer[]) =>
  answers.map((a) => (a.status === 200 ? 'ok' : String(a.body.code ?? a.body.errcode)));
const okCount = (answers: Answer[]) => answers.filter((a) => a.status === 200).length;

/** Every answer is 200 or one of `allowed`. */
function expectOnly(answers: Answer[], ...allowed: string[]) {
  for (const code of codes(answers)) expect(['ok', ...allowed]).toContain(code);
}

// ---- the database, read directly ---------------------------------------------------------------------

type Query = (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

/**
 * The invariants every row must leave behind, whatever won. Plain SQL that both backends run alike; the
 * answer of each is the rows that break it, so a failure names them.
 */
const INVARIANTS: Record<string, string> = {
  'one account per email': 'SELECT email, COUNT(*) AS n FROM accounts GROUP BY email HAVING COUNT(*) > 1',
  'one code per email and purpose':
    'SELECT email, purpose, COUNT(*) AS n FROM codes GROUP BY email, purpose HAVING COUNT(*) > 1',
  "a version's count is its keys, a deleted version has none": `
    SELECT v.account_id, v.version, v.key_count, v.deleted,
           (SELECT COUNT(*) FROM backup_keys k WHERE k.account_id = v.account_id AND k.version = v.version) AS actual
      FROM backup_versions v
     WHERE v.key_count <> (SELECT COUNT(*) FROM backup_keys k WHERE k.account_id = v.account_id AND k.version = v.version)
        OR (v.deleted <> 0 AND v.key_count <> 0)
        OR v.key_count < 0 OR v.etag < 0`,
  'a version with keys has moved its etag':
    'SELECT account_id, version FROM backup_versions WHERE key_count > 0 AND etag = 0',
  'no key without its version': `
    SELECT k.account_id, k.version FROM backup_keys k
     WHERE NOT EXISTS (SELECT 1 FROM backup_versions v WHERE v.account_id = k.account_id AND v.version = k.version)`,
  ...Object.fromEntries(
    ['sessions', 'reset_tokens', 'backup_versions', 'backup_keys', 'account_data', 'oauth_key_rotation'].map(
      (table) => [
        `no ${table} row without its account`,
        `SELECT account_id FROM ${table} t WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.account_id)`,
      ],
    ),
  ),
  'no code for an email without an account':
    'SELECT email, purpose FROM codes c WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.email = c.email)',
};

async function expectInvariants(query: Query) {
  const broken: Record<string, unknown> = {};
  for (const [name, text] of Object.entries(INVARIANTS)) {
    const rows = await query(text);
    if (rows.length > 0) broken[name] = rows;
  }
  expect(broken).toEqual({});
}

// ---- accounts and the state rows start from ------------------------------------------------------------

interface Env {
  server: TestServer;
  query: Query;
  /** A unique email for this row. */
  email(label: string): string;
}

interface Account {
  email: string;
  accountId: string;
  token: string;
}

/** An OPAQUE registration through `route` (sign-up, password change or reset): a record and a wrapped kB. */
async function registration(server: TestServer, request: Req, password = PASSWORD) {
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const { registrationResponse, registrationTicket } = await must<RegistrationStart>(server, {
    ...request,
    body: { ...(request.body as object), registrationRequest },
  });
  const { registrationRecord, exportKey } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse,
    password,
    keyStretching: TEST_KEY_STRETCHING,
  });
  const wrapped = wrapKB(random(32) as KB, fromBase64Url(exportKey) as ExportKey, random(12));
  return { registrationRecord, wrapKB: b64(wrapped), registrationTicket };
}

/** A sign-up's finish body for `email`, made but not sent. */
async function signUpBody(server: TestServer, email: string) {
  const made = await registration(server, req('POST /v1/account/register/start', { body: { email } }));
  return { email, ...made };
}

async function unverifiedAccount(env: Env, label: string): Promise<{ email: string; accountId: string; code: string }> {
  const email = env.email(label);
  const before = env.server.smtp.messages.length;
  const { accountId } = await must<{ accountId: string }>(
    env.server,
    req('POST /v1/account/register/finish', { body: await signUpBody(env.server, email) }),
  );
  return { email, accountId, code: await env.server.smtp.codeFor(email, { after: before }) };
}

async function login(env: Env, email: string, password = PASSWORD): Promise<string> {
  return b64((await rawLogin(env.server.url, email, password)).token);
}

async function account(env: Env, label: string): Promise<Account> {
  const { email, accountId, code } = await unverifiedAccount(env, label);
  await must(env.server, req('POST /v1/account/verify', { body: { email, code } }));
  return { email, accountId, token: await login(env, email) };
}

async function withBackup(env: Env, label: string, keys = 0): Promise<Account & { version: string }> {
  const owner = await account(env, label);
  const { version } = await must<{ version: string }>(
    env.server,
    req('POST /v1/backup/version', {
      token: owner.token,
      body: { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: PUBLIC_KEY } },
    }),
  );
  if (keys > 0) {
    await must(
      env.server,
      req('PUT /v1/backup/keys', { token: owner.token, query: `?version=${version}`, body: upload(0, keys) }),
    );
  }
  return { ...owner, version };
}

/** KE1 → KE2 for a re-authentication of the session, and its honest KE3, not yet sent. */
async function beginReauth(env: Env, token: string) {
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: PASSWORD });
  const { loginId, loginResponse } = await must<{ loginId: string; loginResponse: string }>(
    env.server,
    req('POST /v1/session/reauth/start', { token, body: { startLoginRequest } }),
  );
  const finished = opaque.client.finishLogin({
    clientLoginState,
    loginResponse,
    password: PASSWORD,
    keyStretching: TEST_KEY_STRETCHING,
  });
  if (finished === undefined) throw new Error('reauth: KE2 did not verify');
  return { loginId, finishLoginRequest: finished.finishLoginRequest };
}

/** Waits until `count` mails have reached `email` since `after` (the outbox sends after the answer). */
async function mailsArrive(env: Env, email: string, after: number, count: number) {
  const deadline = Date.now() + 10_000;
  const arrived = () => env.server.smtp.messages.slice(after).filter((m) => m.to.includes(email)).length;
  while (arrived() < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
  expect(arrived()).toBe(count);
}

/** Waits until no mail has arrived for 300 ms (at most 5 s): the outbox has done what the answers began. */
async function mailsSettle(env: Env) {
  let seen = -1;
  for (let i = 0; i < 50 && seen !== env.server.smtp.messages.length; i++) {
    seen = env.server.smtp.messages.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

async function accountRows(env: Env, email: string) {
  return env.query('SELECT id, verified_at FROM accounts WHERE email = $1', [email]);
}

/** The OAuth apps of test/support/oauth.ts, registered once per server. */
const oauthReady = new WeakMap<TestServer, Promise<void>>();

/**
 * An OAuth authorization with keys begun in a fresh browser: its interaction uid, the browser's
 * cookies, and an account whose session may consent. The code-redemption race (N token requests with
 * one code: exactly one gets tokens and keys_jwe) lives in oauth-attacks.test.ts: oidc-provider's
 * endpoints answer in OAuth's error shape, not with LK_* codes, so they are not rows of this table.
 */
async function oauthInteraction(env: Env, label: string) {
  if (!oauthReady.has(env.server)) oauthReady.set(env.server, registerApps(env.server.config.databaseUrl));
  await oauthReady.get(env.server);
  const owner = await account(env, label);
  const app = await startApp(env.server.url);
  const browser = new Browser();
  const url = await authorizationUrl(app, `openid ${KEY_SCOPE}`, { keys_jwk: app.keysJwk });
  const begun = await beginAuthorization(browser, env.server.url, url);
  if (begun.uid === undefined) throw new Error(`set-up: no interaction ${JSON.stringify(begun)}`);
  const keysJwe = await encryptKeys(app.keysJwk, { [KEY_SCOPE]: { kty: 'oct', k: 'a2V5' } });
  return { owner, app, browser, uid: begun.uid, cookie: browser.allCookies(), keysJwe };
}

async function payloadCount(env: Env, model: string): Promise<number> {
  const [row] = await env.query('SELECT count(*) AS n FROM oidc_payloads WHERE model = $1', [model]);
  return Number(row?.n);
}

// ---- the table -------------------------------------------------------------------------------------------

interface Race {
  /** The requests to fire at once. */
  requests: Req[];
  /** Checks of who won, beyond the bar every row meets. */
  check?(answers: Answer[]): Promise<void> | void;
}

interface Row {
  name: string;
  setup(env: Env): Promise<Race>;
}

/** N copies of one request. */
const times = (request: Req, count = N) => range(count).map(() => request);
/** Two kinds of request, alternating, N in all. */
const interleave = (a: (i: number) => Req, b: (i: number) => Req) => range(N).map((i) => (i % 2 === 0 ? a(i) : b(i)));

const createVersion = (token: string) =>
  req('POST /v1/backup/version', {
    token,
    body: { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: PUBLIC_KEY } },
  });

const ROWS: Row[] = [
  // accounts: sign-up and verification
  {
    name: 'register/start for one email',
    async setup(env) {
      const email = env.email('regstart');
      const requests = range(N).map(() =>
        req('POST /v1/account/register/start', {
          body: {
            email,
            registrationRequest: opaque.client.startRegistration({ password: PASSWORD }).registrationRequest,
          },
        }),
      );
      return { requests, check: (answers) => expect(okCount(answers)).toBe(N) };
    },
  },
  {
    name: 'register/finish for one new email',
    async setup(env) {
      const email = env.email('regnew');
      const bodies = await Promise.all(range(N).map(() => signUpBody(env.server, email)));
      return {
        requests: bodies.map((body) => req('POST /v1/account/register/finish', { body })),
        async check(answers) {
          expectOnly(answers, 'LK_EMAIL_TAKEN');
          expect(okCount(answers)).toBeGreaterThan(0);
          const rows = await accountRows(env, email);
          expect(rows).toHaveLength(1);
          expect(rows[0]?.verified_at).toBeNull();
        },
      };
    },
  },
  {
    // One ticket names one credential identifier (issue 8), and two accounts may never share one: the
    // replays replace the unverified account under the email's lock, and the unique index never fires.
    name: 'register/finish replaying one ticket',
    async setup(env) {
      const email = env.email('regticket');
      const body = await signUpBody(env.server, email);
      return {
        requests: times(req('POST /v1/account/register/finish', { body })),
        async check(answers) {
          expectOnly(answers, 'LK_EMAIL_TAKEN');
          expect(okCount(answers)).toBeGreaterThan(0);
          const rows = await env.query('SELECT credential_id FROM accounts WHERE email = $1', [email]);
          expect(rows).toHaveLength(1);
          expect(rows[0]?.['credential_id']).toMatch(/^cid:[A-Za-z0-9_-]{43}$/);
        },
      };
    },
  },
  {
    name: 'register/finish over an unverified account',
    async setup(env) {
      const { email } = await unverifiedAccount(env, 'regover');
      const bodies = await Promise.all(range(N).map(() => signUpBody(env.server, email)));
      return {
        requests: bodies.map((body) => req('POST /v1/account/register/finish', { body })),
        async check(answers) {
          expectOnly(answers, 'LK_EMAIL_TAKEN');
          expect(await accountRows(env, email)).toHaveLength(1);
        },
      };
    },
  },
  {
    name: 'register/finish over a verified account',
    async setup(env) {
      const { email } = await account(env, 'regverified');
      const bodies = await Promise.all(range(N).map(() => signUpBody(env.server, email)));
      return {
        requests: bodies.map((body) => req('POST /v1/account/register/finish', { body })),
        async check(answers) {
          expect(codes(answers)).toEqual(range(N).map(() => 'LK_EMAIL_TAKEN'));
          expect(await accountRows(env, email)).toHaveLength(1);
        },
      };
    },
  },
  {
    name: 'verify with the right code',
    async setup(env) {
      const { email, code } = await unverifiedAccount(env, 'verify');
      return {
        requests: times(req('POST /v1/account/verify', { body: { email, code } })),
        async check(answers) {
          // One uses the code; each submission takes one of its five attempts first (issue 8), so the
          // rest find it used, or (beyond the fifth) its attempts used up.
          expectOnly(answers, 'LK_CODE_INVALID', 'LK_CODE_ATTEMPTS_EXHAUSTED');
          expect(okCount(answers)).toBe(1);
          expect((await accountRows(env, email))[0]?.verified_at).not.toBeNull();
        },
      };
    },
  },
  {
    name: 'verify with wrong codes',
    async setup(env) {
      const { email, code } = await unverifiedAccount(env, 'verifywrong');
      const wrong = code === '00000000' ? '00000001' : '00000000';
      return {
        requests: times(req('POST /v1/account/verify', { body: { email, code: wrong } })),
        // Five are compared (issue 8: each counted first), the rest find the code burnt.
        check: (answers) =>
          expect(codes(answers).sort()).toEqual([
            ...range(N - 5).map(() => 'LK_CODE_ATTEMPTS_EXHAUSTED'),
            ...range(5).map(() => 'LK_CODE_INVALID'),
          ]),
      };
    },
  },
  {
    name: 'verify/resend',
    async setup(env) {
      const { email } = await unverifiedAccount(env, 'resend');
      const before = env.server.smtp.messages.length;
      return {
        requests: times(req('POST /v1/account/verify/resend', { body: { email } })),
        async check(answers) {
          expectOnly(answers, 'LK_RATE_LIMITED');
          await mailsArrive(env, email, before, okCount(answers));
        },
      };
    },
  },
  {
    name: 'register/finish racing verify of the account it replaces',
    async setup(env) {
      const { email, accountId, code } = await unverifiedAccount(env, 'regverify');
      const bodies = await Promise.all(range(N / 2).map(() => signUpBody(env.server, email)));
      return {
        requests: interleave(
          () => req('POST /v1/account/verify', { body: { email, code } }),
          (i) => req('POST /v1/account/register/finish', { body: bodies[(i - 1) / 2] }),
        ),
        async check(answers) {
          // Six submissions of one code share its five attempts (issue 8): a sixth may find them used up.
          expectOnly(answers, 'LK_CODE_INVALID', 'LK_CODE_ATTEMPTS_EXHAUSTED', 'LK_EMAIL_TAKEN');
          const rows = await accountRows(env, email);
          expect(rows).toHaveLength(1);
          // The code proved the mailbox for the account it was sent for: no account that replaced it is verified by it.
          if (rows[0]?.verified_at !== null) expect(rows[0]?.id).toBe(accountId);
        },
      };
    },
  },

  // accounts: login and sessions
  {
    name: 'login/start for one email',
    async setup(env) {
      const { email } = await account(env, 'loginstart');
      const requests = range(N).map(() =>
        req('POST /v1/session/login/start', {
          body: { email, startLoginRequest: opaque.client.startLogin({ password: PASSWORD }).startLoginRequest },
        }),
      );
      return { requests, check: (answers) => expectOnly(answers, 'LK_RATE_LIMITED') };
    },
  },
  {
    name: 'login/finish of one attempt',
    async setup(env) {
      const { email } = await account(env, 'loginfinish');
      const { finish } = await beginRawLogin(env.server.url, email, PASSWORD);
      return {
        requests: times(req('POST /v1/session/login/finish', { body: finish })),
        check(answers) {
          expectOnly(answers, 'LK_LOGIN_ATTEMPT_INVALID');
          expect(okCount(answers)).toBe(1);
        },
      };
    },
  },
  {
    name: 'login/finish of many attempts',
    async setup(env) {
      const { email } = await account(env, 'loginmany');
      const started = await Promise.all(range(N).map(() => beginRawLogin(env.server.url, email, PASSWORD)));
      return {
        requests: started.map(({ finish }) => req('POST /v1/session/login/finish', { body: finish })),
        check: (answers) => expect(okCount(answers)).toBe(N),
      };
    },
  },
  {
    name: 'reauth/start for one session',
    async setup(env) {
      const { token } = await account(env, 'reauthstart');
      const requests = range(N).map(() =>
        req('POST /v1/session/reauth/start', {
          token,
          body: { startLoginRequest: opaque.client.startLogin({ password: PASSWORD }).startLoginRequest },
        }),
      );
      return { requests, check: (answers) => expectOnly(answers, 'LK_RATE_LIMITED') };
    },
  },
  {
    name: 'reauth/finish of one attempt',
    async setup(env) {
      const { token } = await account(env, 'reauthfinish');
      const body = await beginReauth(env, token);
      return {
        requests: times(req('POST /v1/session/reauth/finish', { token, body })),
        check(answers) {
          expectOnly(answers, 'LK_LOGIN_ATTEMPT_INVALID');
          expect(okCount(answers)).toBe(1);
        },
      };
    },
  },
  {
    name: 'logout of one session',
    async setup(env) {
      const { token } = await account(env, 'logout');
      return {
        requests: times(req('POST /v1/session/logout', { token })),
        check(answers) {
          expectOnly(answers, 'LK_SESSION_NOT_FOUND', 'LK_UNAUTHORIZED');
          expect(okCount(answers)).toBe(1);
        },
      };
    },
  },
  {
    name: 'revoke of one session',
    async setup(env) {
      const owner = await account(env, 'revoke');
      const other = await login(env, owner.email);
      const { sessions } = await must<{ sessions: Array<{ sessionId: string; current: boolean }> }>(
        env.server,
        req('GET /v1/sessions', { token: other }),
      );
      const sessionId = sessions.find((s) => !s.current)?.sessionId as string;
      return {
        requests: times(req('DELETE /v1/sessions/{sessionId}', { token: other, params: { sessionId } })),
        check(answers) {
          expectOnly(answers, 'LK_SESSION_NOT_FOUND');
          expect(okCount(answers)).toBe(1);
        },
      };
    },
  },
  {
    name: 'login/finish racing the account’s deletion',
    async setup(env) {
      const owner = await account(env, 'logindelete');
      const started = await Promise.all(range(N / 2).map(() => beginRawLogin(env.server.url, owner.email, PASSWORD)));
      return {
        requests: interleave(
          () => req('DELETE /v1/account', { token: owner.token }),
          (i) => req('POST /v1/session/login/finish', { body: started[(i - 1) / 2]?.finish }),
        ),
        async check(answers) {
          expectOnly(answers, 'LK_UNAUTHORIZED', 'LK_LOGIN_FAILED', 'LK_LOGIN_ATTEMPT_INVALID');
          expect(await accountRows(env, owner.email)).toHaveLength(0);
        },
      };
    },
  },

  // accounts: password change, reset, deletion
  {
    name: 'password/start',
    async setup(env) {
      const { token } = await account(env, 'pwstart');
      const requests = range(N).map(() =>
        req('POST /v1/account/password/start', {
          token,
          body: {
            registrationRequest: opaque.client.startRegistration({ password: NEW_PASSWORD }).registrationRequest,
          },
        }),
      );
      return { requests, check: (answers) => expect(okCount(answers)).toBe(N) };
    },
  },
  {
    name: 'password/finish with different new passwords',
    async setup(env) {
      const { token } = await account(env, 'pwfinish');
      const bodies = await Promise.all(
        range(N).map(() =>
          registration(env.server, req('POST /v1/account/password/start', { token, body: {} }), NEW_PASSWORD),
        ),
      );
      return {
        requests: bodies.map((body) => req('POST /v1/account/password/finish', { token, body })),
        check: (answers) => expect(okCount(answers)).toBe(N),
      };
    },
  },
  {
    name: 'reset/start',
    async setup(env) {
      const { email } = await account(env, 'resetstart');
      const before = env.server.smtp.messages.length;
      return {
        requests: times(req('POST /v1/account/reset/start', { body: { email } })),
        async check(answers) {
          expectOnly(answers, 'LK_RATE_LIMITED');
          await mailsArrive(env, email, before, okCount(answers));
        },
      };
    },
  },
  {
    name: 'reset/verify with the right code',
    async setup(env) {
      const { email } = await account(env, 'resetverify');
      const before = env.server.smtp.messages.length;
      await must(env.server, req('POST /v1/account/reset/start', { body: { email } }));
      const code = await env.server.smtp.codeFor(email, { after: before });
      return {
        requests: times(req('POST /v1/account/reset/verify', { body: { email, code } })),
        check(answers) {
          // One uses the code; each submission takes one of its five attempts first (issue 8), so the
          // rest find it used, or (beyond the fifth) its attempts used up.
          expectOnly(answers, 'LK_CODE_INVALID', 'LK_CODE_ATTEMPTS_EXHAUSTED');
          expect(okCount(answers)).toBe(1);
        },
      };
    },
  },
  ...(['reset/register', 'reset/finish'] as const).map(
    (step): Row => ({
      name: `${step} with one token`,
      async setup(env) {
        const { email } = await account(env, step.replace('/', ''));
        const before = env.server.smtp.messages.length;
        await must(env.server, req('POST /v1/account/reset/start', { body: { email } }));
        const code = await env.server.smtp.codeFor(email, { after: before });
        const { resetToken } = await must<{ resetToken: string }>(
          env.server,
          req('POST /v1/account/reset/verify', { body: { email, code } }),
        );
        if (step === 'reset/register') {
          const requests = range(N).map(() =>
            req('POST /v1/account/reset/register', {
              body: {
                resetToken,
                registrationRequest: opaque.client.startRegistration({ password: NEW_PASSWORD }).registrationRequest,
              },
            }),
          );
          return { requests, check: (answers) => expect(okCount(answers)).toBe(N) };
        }
        const bodies = await Promise.all(
          range(N).map(() =>
            registration(env.server, req('POST /v1/account/reset/register', { body: { resetToken } }), NEW_PASSWORD),
          ),
        );
        return {
          requests: bodies.map((body) => req('POST /v1/account/reset/finish', { body: { resetToken, ...body } })),
          check(answers) {
            expectOnly(answers, 'LK_RESET_TOKEN_INVALID');
            expect(okCount(answers)).toBe(1);
          },
        };
      },
    }),
  ),
  {
    name: 'password/finish racing reset/finish',
    async setup(env) {
      const owner = await account(env, 'pwreset');
      const before = env.server.smtp.messages.length;
      await must(env.server, req('POST /v1/account/reset/start', { body: { email: owner.email } }));
      const code = await env.server.smtp.codeFor(owner.email, { after: before });
      const { resetToken } = await must<{ resetToken: string }>(
        env.server,
        req('POST /v1/account/reset/verify', { body: { email: owner.email, code } }),
      );
      const changes = await Promise.all(
        range(N / 2).map(() =>
          registration(
            env.server,
            req('POST /v1/account/password/start', { token: owner.token, body: {} }),
            NEW_PASSWORD,
          ),
        ),
      );
      const resets = await Promise.all(
        range(N / 2).map(() =>
          registration(env.server, req('POST /v1/account/reset/register', { body: { resetToken } }), NEW_PASSWORD),
        ),
      );
      return {
        requests: interleave(
          (i) => req('POST /v1/account/password/finish', { token: owner.token, body: changes[i / 2] }),
          (i) => req('POST /v1/account/reset/finish', { body: { resetToken, ...resets[(i - 1) / 2] } }),
        ),
        check: (answers) => expectOnly(answers, 'LK_RESET_TOKEN_INVALID', 'LK_UNAUTHORIZED'),
      };
    },
  },
  {
    name: 'reset/start racing the account’s deletion',
    async setup(env) {
      const owner = await account(env, 'resetdel');
      return {
        requests: interleave(
          () => req('POST /v1/account/reset/start', { body: { email: owner.email } }),
          () => req('DELETE /v1/account', { token: owner.token }),
        ),
        async check(answers) {
          expectOnly(answers, 'LK_UNAUTHORIZED');
          expect(await accountRows(env, owner.email)).toHaveLength(0);
          // The codes are made and mailed after the answers (the outbox): the invariants wait for them.
          await mailsSettle(env);
        },
      };
    },
  },
  {
    name: 'account delete',
    async setup(env) {
      const owner = await withBackup(env, 'delete', 5);
      return {
        requests: times(req('DELETE /v1/account', { token: owner.token })),
        async check(answers) {
          expectOnly(answers, 'LK_UNAUTHORIZED');
          expect(okCount(answers)).toBe(1);
          expect(await accountRows(env, owner.email)).toHaveLength(0);
        },
      };
    },
  },

  // backup
  {
    name: 'version create',
    async setup(env) {
      const owner = await account(env, 'vcreate');
      return {
        requests: times(createVersion(owner.token)),
        check(answers) {
          expect(okCount(answers)).toBe(N);
          expect(new Set(answers.map((a) => a.body.version)).size).toBe(N);
        },
      };
    },
  },
  {
    name: 'version update',
    async setup(env) {
      const owner = await withBackup(env, 'vupdate', 3);
      const requests = times(
        req('PUT /v1/backup/version/{version}', {
          token: owner.token,
          params: { version: owner.version },
          body: { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: PUBLIC_KEY, signatures: {} } },
        }),
      );
      return { requests, check: (answers) => expect(okCount(answers)).toBe(N) };
    },
  },
  {
    name: 'version delete',
    async setup(env) {
      const owner = await withBackup(env, 'vdelete', 20);
      return {
        requests: times(
          req('DELETE /v1/backup/version/{version}', { token: owner.token, params: { version: owner.version } }),
        ),
        check(answers) {
          expectOnly(answers, 'LK_BACKUP_NOT_FOUND');
          expect(okCount(answers)).toBe(1);
        },
      };
    },
  },
  {
    name: 'keys upload, overlapping',
    async setup(env) {
      const owner = await withBackup(env, 'upload');
      return {
        requests: range(N).map((i) =>
          req('PUT /v1/backup/keys', {
            token: owner.token,
            query: `?version=${owner.version}`,
            body: upload(i * 5, 20),
          }),
        ),
        async check(answers) {
          expect(okCount(answers)).toBe(N);
          const [row] = await env.query('SELECT key_count FROM backup_versions WHERE account_id = $1', [
            owner.accountId,
          ]);
          expect(Number(row?.key_count)).toBe((N - 1) * 5 + 20);
        },
      };
    },
  },
  ...(
    [
      ['DELETE /v1/backup/keys', {}],
      ['DELETE /v1/backup/keys/{roomId}', { roomId: ROOM }],
      ['DELETE /v1/backup/keys/{roomId}/{sessionId}', { roomId: ROOM, sessionId: 's3' }],
    ] as const
  ).map(
    ([route, params]): Row => ({
      name: route.replace('DELETE /v1/backup/', 'delete '),
      async setup(env) {
        const owner = await withBackup(env, 'keysdelete', 10);
        return {
          requests: times(req(route, { token: owner.token, params, query: `?version=${owner.version}` })),
          check: (answers) => expect(okCount(answers)).toBe(N),
        };
      },
    }),
  ),

  // backup: conflicting pairs
  {
    name: 'keys upload racing the version’s delete',
    async setup(env) {
      const owner = await withBackup(env, 'upvdel', 10);
      return {
        requests: interleave(
          (i) =>
            req('PUT /v1/backup/keys', {
              token: owner.token,
              query: `?version=${owner.version}`,
              body: upload(i * 10, 30),
            }),
          () => req('DELETE /v1/backup/version/{version}', { token: owner.token, params: { version: owner.version } }),
        ),
        check: (answers) => expectOnly(answers, 'LK_BACKUP_NOT_FOUND'),
      };
    },
  },
  ...(
    [
      ['DELETE /v1/backup/keys', {}],
      ['DELETE /v1/backup/keys/{roomId}', { roomId: ROOM }],
      ['DELETE /v1/backup/keys/{roomId}/{sessionId}', { roomId: ROOM, sessionId: 's5' }],
    ] as const
  ).map(
    ([route, params]): Row => ({
      name: `keys upload racing ${route.replace('DELETE /v1/backup/', 'delete ')}`,
      async setup(env) {
        const owner = await withBackup(env, 'upkdel', 10);
        return {
          requests: interleave(
            (i) =>
              req('PUT /v1/backup/keys', {
                token: owner.token,
                query: `?version=${owner.version}`,
                body: upload(i * 3, 15, i),
              }),
            () => req(route, { token: owner.token, params, query: `?version=${owner.version}` }),
          ),
          check: (answers) => expect(okCount(answers)).toBe(N),
        };
      },
    }),
  ),
  {
    name: 'keys upload racing a new version',
    async setup(env) {
      const owner = await withBackup(env, 'upvnew', 5);
      return {
        requests: interleave(
          (i) =>
            req('PUT /v1/backup/keys', {
              token: owner.token,
              query: `?version=${owner.version}`,
              body: upload(i * 4, 12),
            }),
          () => createVersion(owner.token),
        ),
        check: (answers) => expectOnly(answers, 'LK_WRONG_BACKUP_VERSION'),
      };
    },
  },
  {
    name: 'version create racing version delete',
    async setup(env) {
      const owner = await withBackup(env, 'vnewdel', 5);
      return {
        requests: interleave(
          () => createVersion(owner.token),
          () => req('DELETE /v1/backup/version/{version}', { token: owner.token, params: { version: owner.version } }),
        ),
        check: (answers) => expectOnly(answers, 'LK_BACKUP_NOT_FOUND'),
      };
    },
  },
  ...(['keys upload', 'version create', 'secret put'] as const).map(
    (what): Row => ({
      name: `${what} racing the account’s deletion`,
      async setup(env) {
        const owner = await withBackup(env, 'acctdel', 10);
        const write = (i: number): Req => {
          if (what === 'keys upload') {
            return req('PUT /v1/backup/keys', {
              token: owner.token,
              query: `?version=${owner.version}`,
              body: upload(i * 10, 40),
            });
          }
          if (what === 'version create') return createVersion(owner.token);
          return req('PUT /v1/secret-storage/keys/{keyId}', {
            token: owner.token,
            params: { keyId: `k${i}` },
            body: { algorithm: STORAGE_ALGORITHM },
          });
        };
        // Mostly writes, with a delete in the middle of them.
        const requests = range(N).map((i) =>
          i === N / 2 ? req('DELETE /v1/account', { token: owner.token }) : write(i),
        );
        return {
          requests,
          async check(answers) {
            expectOnly(answers, 'LK_UNAUTHORIZED', 'LK_BACKUP_NOT_FOUND');
            expect(await accountRows(env, owner.email)).toHaveLength(0);
          },
        };
      },
    }),
  ),

  // secrets
  {
    name: 'storage key put',
    async setup(env) {
      const owner = await account(env, 'sskey');
      const request = req('PUT /v1/secret-storage/keys/{keyId}', {
        token: owner.token,
        params: { keyId: 'k1' },
        body: { algorithm: STORAGE_ALGORITHM },
      });
      return { requests: times(request), check: (answers) => expect(okCount(answers)).toBe(N) };
    },
  },
  {
    name: 'default key put',
    async setup(env) {
      const owner = await account(env, 'ssdefault');
      await must(
        env.server,
        req('PUT /v1/secret-storage/keys/{keyId}', {
          token: owner.token,
          params: { keyId: 'k1' },
          body: { algorithm: STORAGE_ALGORITHM },
        }),
      );
      const request = req('PUT /v1/secret-storage/default-key', { token: owner.token, body: { key: 'k1' } });
      return { requests: times(request), check: (answers) => expect(okCount(answers)).toBe(N) };
    },
  },
  {
    name: 'secret put and delete',
    async setup(env) {
      const owner = await account(env, 'sssecret');
      await must(
        env.server,
        req('PUT /v1/secret-storage/keys/{keyId}', {
          token: owner.token,
          params: { keyId: 'k1' },
          body: { algorithm: STORAGE_ALGORITHM },
        }),
      );
      const params = { name: 'm.megolm_backup.v1' };
      return {
        requests: interleave(
          () =>
            req('PUT /v1/secret-storage/secrets/{name}', {
              token: owner.token,
              params,
              body: { encrypted: { k1: ENCRYPTED_SECRET } },
            }),
          () => req('DELETE /v1/secret-storage/secrets/{name}', { token: owner.token, params }),
        ),
        check: (answers) => expectOnly(answers, 'LK_SECRET_NOT_FOUND'),
      };
    },
  },
  {
    name: 'secret delete',
    async setup(env) {
      const owner = await account(env, 'ssdelete');
      await must(
        env.server,
        req('PUT /v1/secret-storage/keys/{keyId}', {
          token: owner.token,
          params: { keyId: 'k1' },
          body: { algorithm: STORAGE_ALGORITHM },
        }),
      );
      const params = { name: 'm.cross_signing.master' };
      await must(
        env.server,
        req('PUT /v1/secret-storage/secrets/{name}', {
          token: owner.token,
          params,
          body: { encrypted: { k1: ENCRYPTED_SECRET } },
        }),
      );
      return {
        requests: times(req('DELETE /v1/secret-storage/secrets/{name}', { token: owner.token, params })),
        check(answers) {
          expectOnly(answers, 'LK_SECRET_NOT_FOUND');
          expect(okCount(answers)).toBe(1);
        },
      };
    },
  },

  // the Matrix-compatible routes over the same backups (hidden from /docs: MATRIX_WRITES lists them)
  {
    name: 'Matrix: version create',
    async setup(env) {
      const owner = await account(env, 'mxcreate');
      return {
        requests: times(req(`POST ${MATRIX}/room_keys/version`, { token: owner.token, body: MATRIX_VERSION })),
        async check(answers) {
          expect(okCount(answers)).toBe(N);
          const versions = new Set(answers.map((a) => a.body.version));
          expect(versions.size).toBe(N);
        },
      };
    },
  },
  {
    name: 'Matrix: version auth_data update',
    async setup(env) {
      const owner = await withBackup(env, 'mxupdate');
      const params = { version: owner.version };
      return {
        requests: times(
          req(`PUT ${MATRIX}/room_keys/version/{version}`, { token: owner.token, params, body: MATRIX_VERSION }),
        ),
        check: (answers) => expect(okCount(answers)).toBe(N),
      };
    },
  },
  {
    name: 'Matrix: version delete, and an upload into it',
    async setup(env) {
      const owner = await withBackup(env, 'mxdelete', 3);
      const params = { version: owner.version };
      const query = `?version=${owner.version}`;
      return {
        requests: interleave(
          () => req(`DELETE ${MATRIX}/room_keys/version/{version}`, { token: owner.token, params }),
          (i) => req(`PUT ${MATRIX}/room_keys/keys`, { token: owner.token, query, body: upload(100 + i, 2) }),
        ),
        check: (answers) => expectOnly(answers, 'M_NOT_FOUND', 'M_WRONG_ROOM_KEYS_VERSION'),
      };
    },
  },
  {
    name: 'Matrix: uploads of the whole backup, a room and one key',
    async setup(env) {
      const owner = await withBackup(env, 'mxupload');
      const query = `?version=${owner.version}`;
      const room = { roomId: ROOM };
      const requests = range(N).map((i) => {
        if (i % 3 === 0) return req(`PUT ${MATRIX}/room_keys/keys`, { token: owner.token, query, body: upload(0, 4) });
        if (i % 3 === 1) {
          const body = upload(0, 4).rooms[ROOM];
          return req(`PUT ${MATRIX}/room_keys/keys/{roomId}`, { token: owner.token, query, params: room, body });
        }
        const params = { ...room, sessionId: 's0' };
        const body = backedUpKey(0);
        return req(`PUT ${MATRIX}/room_keys/keys/{roomId}/{sessionId}`, { token: owner.token, query, params, body });
      });
      return {
        requests,
        async check(answers) {
          expect(okCount(answers)).toBe(N);
          const [row] = await env.query('SELECT key_count FROM backup_versions WHERE account_id = $1', [
            owner.accountId,
          ]);
          expect(Number(row?.key_count)).toBe(4);
        },
      };
    },
  },
  {
    name: 'Matrix: key deletes (all, a room, one key) against uploads',
    async setup(env) {
      const owner = await withBackup(env, 'mxkeydelete', 6);
      const query = `?version=${owner.version}`;
      const deletes = [
        req(`DELETE ${MATRIX}/room_keys/keys`, { token: owner.token, query }),
        req(`DELETE ${MATRIX}/room_keys/keys/{roomId}`, { token: owner.token, query, params: { roomId: ROOM } }),
        req(`DELETE ${MATRIX}/room_keys/keys/{roomId}/{sessionId}`, {
          token: owner.token,
          query,
          params: { roomId: ROOM, sessionId: 's1' },
        }),
      ];
      return {
        requests: interleave(
          (i) => deletes[(i / 2) % 3] as Req,
          (i) => req(`PUT ${MATRIX}/room_keys/keys`, { token: owner.token, query, body: upload(10 + i, 1) }),
        ),
        check: (answers) => expect(okCount(answers)).toBe(N),
      };
    },
  },

  // oauth (issue 9): the consent page's API
  {
    name: 'oauth consent to one interaction, N times at once',
    async setup(env) {
      const { owner, uid, cookie, keysJwe } = await oauthInteraction(env, 'oauthconsent');
      const consentReq = req('POST /v1/oauth/interaction/{uid}/consent', {
        params: { uid },
        token: owner.token,
        cookie,
        body: { keys_jwe: keysJwe },
      });
      return { requests: times(consentReq), check: (answers) => expectOnly(answers, 'LK_OAUTH_INTERACTION_INVALID') };
    },
  },
  {
    name: 'oauth consent and abort of one interaction',
    async setup(env) {
      const { owner, uid, cookie, keysJwe } = await oauthInteraction(env, 'oauthabort');
      const params = { uid };
      return {
        requests: interleave(
          () =>
            req('POST /v1/oauth/interaction/{uid}/consent', {
              params,
              token: owner.token,
              cookie,
              body: { keys_jwe: keysJwe },
            }),
          () => req('POST /v1/oauth/interaction/{uid}/abort', { params, cookie }),
        ),
        check: (answers) => expectOnly(answers, 'LK_OAUTH_INTERACTION_INVALID'),
      };
    },
  },
  {
    name: 'oauth key-data asked N times at once: one rotation secret',
    async setup(env) {
      const { owner } = await oauthInteraction(env, 'oauthkeydata');
      const ask = req('POST /v1/oauth/key-data', {
        token: owner.token,
        body: { client_id: 'notes', scope: KEY_SCOPE },
      });
      return {
        requests: times(ask),
        check(answers) {
          expect(okCount(answers)).toBe(N);
          const secrets = new Set(
            answers.map((a) => (a.body[KEY_SCOPE] as { keyRotationSecret: string }).keyRotationSecret),
          );
          expect(secrets.size).toBe(1);
        },
      };
    },
  },
  {
    // oidc-provider's resume route, where the browser lands after consent and the code is issued: it
    // answers in OAuth's shape (a redirect to the app), so its bar is oauthDefined's, not an LK_* code.
    name: 'oauth resume of one consented interaction, N times at once: one code',
    async setup(env) {
      const { owner, uid, browser, keysJwe } = await oauthInteraction(env, 'oauthresume');
      const granted = await consent(browser, env.server.url, uid, owner.token, { keys_jwe: keysJwe });
      expect(granted.body.redirectTo).toBe(`${new URL(env.server.url).origin}/oauth/auth/${uid}`);
      const codesBefore = await payloadCount(env, 'AuthorizationCode');
      const keysBefore = await payloadCount(env, 'KeysJwe');
      const resume = req('GET /oauth/auth/{uid}', { params: { uid }, cookie: browser.allCookies() });
      return {
        requests: times(resume),
        async check(answers) {
          const callbacks = answers.map((a) => new URL(a.location ?? 'about:blank'));
          const withCode = callbacks.filter((url) => url.searchParams.has('code'));
          expect(withCode).toHaveLength(1);
          expect(withCode[0]?.origin + (withCode[0]?.pathname ?? '')).toBe(REDIRECT);
          // One code issued and one keys_jwe kept for it, whatever the others were told.
          expect((await payloadCount(env, 'AuthorizationCode')) - codesBefore).toBe(1);
          expect((await payloadCount(env, 'KeysJwe')) - keysBefore).toBe(1);
        },
      };
    },
  },
  {
    name: 'oauth grant revoked N times at once',
    async setup(env) {
      const { owner, uid, browser, keysJwe } = await oauthInteraction(env, 'oauthrevoke');
      await consent(browser, env.server.url, uid, owner.token, { keys_jwe: keysJwe });
      const { grants } = await must<{ grants: Array<{ grantId: string }> }>(
        env.server,
        req('GET /v1/oauth/grants', { token: owner.token }),
      );
      const grantId = grants[0]?.grantId as string;
      return {
        requests: times(req('DELETE /v1/oauth/grants/{grantId}', { params: { grantId }, token: owner.token })),
        async check(answers) {
          expectOnly(answers, 'LK_OAUTH_GRANT_NOT_FOUND');
          expect(okCount(answers)).toBeGreaterThanOrEqual(1);
          const left = await must<{ grants: unknown[] }>(
            env.server,
            req('GET /v1/oauth/grants', { token: owner.token }),
          );
          expect(left.grants).toEqual([]);
        },
      };
    },
  },
];

// ---- running it on both backends -----------------------------------------------------------------------

/**
 * The bar every answer meets: a 2xx, or a registered LK_* code with its own status (on the Matrix routes,
 * a Matrix `M_*` errcode below 500). Never a 5xx.
 */
function expectDefined(answers: Answer[]) {
  const matrixRefusal = (a: Answer) =>
    a.route.includes(MATRIX) && typeof a.body.errcode === 'string' && a.body.errcode.startsWith('M_') && a.status < 500;
  const undefinedAnswers = answers.filter(
    (a) =>
      !(a.status >= 200 && a.status < 300) &&
      !(isErrorCode(a.body.code) && ERRORS[a.body.code].status === a.status && a.status < 500) &&
      !matrixRefusal(a) &&
      !oauthDefined(a),
  );
  expect(undefinedAnswers).toEqual([]);
}

/**
 * oidc-provider's own endpoints (under /oauth) answer as OAuth says: a redirect to the app's registered
 * callback with a `code` or an `error`, or a 4xx whose JSON names an OAuth `error`.
 */
function oauthDefined(a: Answer): boolean {
  if (!a.route.startsWith('GET /oauth/')) return false;
  if (a.status === 303 || a.status === 302) {
    const callback = new URL(a.location ?? 'about:blank');
    return (
      callback.origin + callback.pathname === REDIRECT &&
      (callback.searchParams.has('code') || callback.searchParams.has('error'))
    );
  }
  return a.status >= 400 && a.status < 500 && typeof a.body.error === 'string';
}

const backends = {
  sqlite: async (server: TestServer): Promise<[Query, () => Promise<void>]> => {
    const db = new SqliteDatabase(join(server.dir, 'latchkey.db'), { readonly: true, fileMustExist: true });
    // The texts number their parameters in order ($1, $2...), so plain ? serves SQLite.
    const query: Query = async (text, params = []) =>
      db.prepare(text.replaceAll(/\$\d+/g, '?')).all(...params) as Record<string, unknown>[];
    return [
      query,
      async () => {
        db.close();
      },
    ];
  },
  postgres: async (server: TestServer): Promise<[Query, () => Promise<void>]> => {
    const client = new pg.Client({ connectionString: server.config.databaseUrl });
    await client.connect();
    const query: Query = async (text, params = []) => (await client.query(text, params)).rows;
    return [query, () => client.end()];
  },
} as const;

describe.each(BACKENDS)('races on %s', (backend) => {
  const env = {} as Env;
  let closeQuery: () => Promise<void>;
  let rowNumber = 0;
  const raced = new Set<string>();

  beforeAll(async () => {
    const databaseUrl = await databaseOn(backend, 'races');
    // A known port: the OAuth issuer (and so its redirects) names it.
    const port = await freePort();
    env.server = await startTestServer({
      ...databaseUrl,
      port,
      publicUrl: `http://127.0.0.1:${port}`,
      // Limits would answer most of a race LK_RATE_LIMITED before it reached the code under test.
      rateLimits: UNLIMITED_RATE_LIMITS,
    });
    [env.query, closeQuery] = await backends[backend](env.server);
    env.email = (label) => `${label}.${++rowNumber}@race.example`;
  });
  afterAll(async () => {
    await closeQuery?.();
    await env.server?.close();
  });

  for (const row of ROWS) {
    it(row.name, async () => {
      const race = await row.setup(env);
      const answers = await Promise.all(race.requests.map((request) => send(env.server, request)));
      expectDefined(answers);
      await race.check?.(answers);
      await expectInvariants(env.query);
      for (const request of race.requests) raced.add(request.route);
    });
  }

  // Last, from the routes the rows above raced: a new write route fails here until a row races it.
  it('has raced every write route the server documents', async () => {
    const openapi = await must<{ paths: Record<string, Record<string, unknown>> }>(env.server, req('GET /docs/json'));
    const writes = Object.entries(openapi.paths).flatMap(([path, operations]) =>
      Object.keys(operations)
        .filter((method) => method !== 'get' && method !== 'head')
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect([...writes, ...MATRIX_WRITES].filter((route) => !raced.has(route))).toEqual([]);
  });
});
