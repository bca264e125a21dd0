import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  CODE_TTL_MS,
  ERRORS,
  type ErrorCode,
  type ExportKey,
  FRESH_AUTH_MS,
  fromBase64Url,
  type KB,
  LOGIN_ATTEMPT_TTL_MS,
  RESET_TOKEN_TTL_MS,
  SESSION_LIFETIME_MS,
  toBase64Url,
  WRAPPED_KB_LENGTH,
  wrapKB,
} from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  type DbSnapshot,
  type SnapshotExclusion,
  snapshotDatabase,
  snapshotPostgres,
  withoutExcluded,
} from '../support/db-snapshot.js';
import { createTestDatabase } from '../support/postgres.js';
import { createVerifiedAccount, startTestServer, TEST_KEY_STRETCHING, type TestServer } from '../support/server.js';

/**
 * Hostile input as a table (conventions §6, issue 2 "Bad input"): every route the server documents at
 * /docs/json gets malformed JSON, wrong media types, wrong types, missing and unknown fields, oversized
 * bodies and fields, non-canonical base64url, garbage OPAQUE messages, bad bearer tokens, and the
 * protocol's own replays and expiries. Each row must answer 4xx with its LK_* code and a message, and
 * leave every table as it was, but for the parts a row names and says why. The table runs against
 * both storage backends: some inputs (U+0000, overlong keys, 64-bit numbers) only break PostgreSQL.
 */

// ---- servers on a clock the table controls ---------------------------------------------------------

/** Frozen at start so nothing expires or ages between rows; rows that need time to pass set `at`. */
const clock = { start: Date.now(), offset: 0 };
const now = () => clock.start + clock.offset;

const JSON_TYPE = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const b64 = (bytes: Uint8Array) => toBase64Url(bytes);
const filled = (length: number, byte: number) => new Uint8Array(length).fill(byte);
const random = (length: number) => new Uint8Array(randomBytes(length));
const DEFAULT_BODY_LIMIT = 64 * 1024;
const PASSWORD = 'correct horse battery';
const BACKUP_ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const STORAGE_ALGORITHM = 'm.secret_storage.v1.aes-hmac-sha2';
const BACKED_UP_KEY = {
  first_message_index: 0,
  forwarded_count: 0,
  is_verified: false,
  session_data: { ephemeral: 'ZXBoZW1lcmFs', ciphertext: 'Y2lwaGVydGV4dA', mac: 'bWFj' },
};
/** A backup public key as auth_data carries it: 32 bytes, unpadded base64. */
const PUBLIC_KEY = 'cHVibGljIGtleSBwdWJsaWMga2V5IHB1YmxpYyBrZXk';
const ENCRYPTED_SECRET = { iv: 'aXY', ciphertext: 'Y2lwaGVydGV4dA', mac: 'bWFj' };

await opaque.ready;

/** A request made during set-up (not a table row): it must succeed. */
async function call<T>(server: TestServer, method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : JSON_TYPE), ...(token === undefined ? {} : bearer(token)) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`set-up ${method} ${path} → ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** An OPAQUE registration through `path`: a record and a fresh kB wrapped under the new export key. */
async function registration(server: TestServer, path: string, fields: Record<string, string>) {
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password: PASSWORD });
  const { registrationResponse, registrationTicket } = await call<{
    registrationResponse: string;
    registrationTicket: string;
  }>(server, 'POST', path, { ...fields, registrationRequest });
  const { registrationRecord, exportKey } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse,
    password: PASSWORD,
    keyStretching: TEST_KEY_STRETCHING,
  });
  const wrapped = wrapKB(random(32) as KB, fromBase64Url(exportKey) as ExportKey, random(12));
  return { registrationRecord, wrapKB: b64(wrapped), registrationTicket };
}

/** KE1 → KE2 through `path`, and the honest KE3 for it: what a replay or a mix-up reuses. */
async function loginAttempt(server: TestServer, path: string, fields: Record<string, string>, token?: string) {
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: PASSWORD });
  const { loginId, loginResponse } = await call<{ loginId: string; loginResponse: string }>(
    server,
    'POST',
    path,
    { ...fields, startLoginRequest },
    token,
  );
  const login = opaque.client.finishLogin({
    clientLoginState,
    loginResponse,
    password: PASSWORD,
    keyStretching: TEST_KEY_STRETCHING,
  });
  if (login === undefined) throw new Error('set-up login: the server KE2 did not verify');
  return { loginId, finishLoginRequest: login.finishLoginRequest };
}

async function logIn(server: TestServer, email: string) {
  return (await createVerifiedAccount(server, email, PASSWORD)).client.logIn(email, PASSWORD);
}

async function signUpPending(server: TestServer, email: string): Promise<string> {
  const before = server.smtp.messages.length;
  await server.client().signUp(email, PASSWORD);
  return server.smtp.codeFor(email, { after: before });
}

async function resetCode(server: TestServer, email: string): Promise<string> {
  const before = server.smtp.messages.length;
  await call(server, 'POST', '/v1/account/reset/start', { email });
  return server.smtp.codeFor(email, { after: before });
}

async function resetToken(server: TestServer, email: string): Promise<{ code: string; resetToken: string }> {
  await createVerifiedAccount(server, email, PASSWORD);
  const code = await resetCode(server, email);
  const { resetToken } = await call<{ resetToken: string }>(server, 'POST', '/v1/account/reset/verify', {
    email,
    code,
  });
  return { code, resetToken };
}

// ---- fixtures: what the rows point at, made afresh on each backend ---------------------------------

type Attempt = { loginId: string; finishLoginRequest: string };

interface Fixtures {
  registrationRequest: string;
  ke1: string;
  /** A well-formed record, wrapKB and ticket, from newcomer@example.com's sign-up start; never finished. */
  valid: { registrationRecord: string; wrapKB: string; registrationTicket: string };
  /** The same from a sign-up start for owner@example.com, whose verified account makes it LK_EMAIL_TAKEN. */
  validForOwner: { registrationRecord: string; wrapKB: string; registrationTicket: string };
  owner: { token: string; sessionId: string };
  other: { token: string; sessionId: string };
  /** Logout and deletion rows use this account, so a row that wrongly succeeds spares the owner. */
  doomed: string;
  revoked: { token: string; sessionId: string };
  pendingCode: string;
  usedCode: string;
  liveResetToken: string;
  expiringResetToken: string;
  spentReset: { code: string; resetToken: string };
  pendingResetCode: string;
  replayed: Attempt;
  crossedA: Attempt;
  crossedB: Attempt;
  expiringLogin: Attempt;
  loginForReauth: Attempt;
  unverifiedLogin: Attempt;
  reauthForLogin: Attempt;
  othersReauth: Attempt;
}

/** The per-account login limit (10 a window) is filled in a later window, so no other row shares it. */
const RATE_LIMIT_AT = 2 * 3600_000;

async function prepareFixtures(server: TestServer): Promise<Fixtures> {
  const owner = await logIn(server, 'owner@example.com');
  const other = await logIn(server, 'other@example.com');
  const doomed = await logIn(server, 'doomed@example.com');
  const revoked = await server.client().logIn('owner@example.com', PASSWORD);
  await revoked.logOut();
  const usedCode = await signUpPending(server, 'used@example.com');
  await call(server, 'POST', '/v1/account/verify', { email: 'used@example.com', code: usedCode });
  const spentReset = await resetToken(server, 'spent@example.com');
  const spentRecord = await registration(server, '/v1/account/reset/register', { resetToken: spentReset.resetToken });
  await call(server, 'POST', '/v1/account/reset/finish', { resetToken: spentReset.resetToken, ...spentRecord });
  await createVerifiedAccount(server, 'reset-pending@example.com', PASSWORD);
  await createVerifiedAccount(server, 'login@example.com', PASSWORD);
  const attempt = () => loginAttempt(server, '/v1/session/login/start', { email: 'login@example.com' });
  const replayed = await attempt();
  await call(server, 'POST', '/v1/session/login/finish', replayed);
  const pendingCode = await signUpPending(server, 'pending@example.com');
  const fixtures: Fixtures = {
    registrationRequest: opaque.client.startRegistration({ password: PASSWORD }).registrationRequest,
    ke1: opaque.client.startLogin({ password: PASSWORD }).startLoginRequest,
    valid: await registration(server, '/v1/account/register/start', { email: 'newcomer@example.com' }),
    validForOwner: await registration(server, '/v1/account/register/start', { email: 'owner@example.com' }),
    owner: owner.state,
    other: other.state,
    doomed: doomed.state.token,
    revoked: revoked.state,
    pendingCode,
    usedCode,
    liveResetToken: (await resetToken(server, 'resetter@example.com')).resetToken,
    expiringResetToken: (await resetToken(server, 'expiring@example.com')).resetToken,
    spentReset,
    pendingResetCode: await resetCode(server, 'reset-pending@example.com'),
    replayed,
    crossedA: await attempt(),
    crossedB: await attempt(),
    expiringLogin: await attempt(),
    loginForReauth: await attempt(),
    unverifiedLogin: await loginAttempt(server, '/v1/session/login/start', { email: 'pending@example.com' }),
    reauthForLogin: await loginAttempt(server, '/v1/session/reauth/start', {}, owner.state.token),
    othersReauth: await loginAttempt(server, '/v1/session/reauth/start', {}, other.state.token),
  };
  await prepareBackup(server, owner.state.token);
  await fillLoginLimit(server, fixtures.ke1);
  return fixtures;
}

/** Backup versions 1 (live but old), 2 (deleted) and 3 (current, holding one key). */
async function prepareBackup(server: TestServer, token: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await call(
      server,
      'POST',
      '/v1/backup/version',
      { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: PUBLIC_KEY } },
      token,
    );
  }
  await call(server, 'DELETE', '/v1/backup/version/2', undefined, token);
  const rooms = { '!room:example.org': { sessions: { session1: BACKED_UP_KEY } } };
  await call(server, 'PUT', '/v1/backup/keys?version=3', { rooms }, token);
}

async function fillLoginLimit(server: TestServer, ke1: string): Promise<void> {
  clock.offset = RATE_LIMIT_AT;
  try {
    for (let i = 0; i < 10; i++) {
      // No such account: the server answers with a fake KE2 (so as not to tell), and counts the attempt.
      await call(server, 'POST', '/v1/session/login/start', { email: 'hammered@example.com', startLoginRequest: ke1 });
    }
  } finally {
    clock.offset = 0;
  }
}

// ---- the table's types ------------------------------------------------------------------------------

/** What a rejection records by design, and why; the rest of the database must not change. */
interface Changes {
  exclude: SnapshotExclusion[];
  why: string;
}

/** One hostile request and what it must get back. */
interface Row {
  name: string;
  /** The documented route it aims at (`METHOD /openapi/path`), or {@link NO_ROUTE}. */
  route: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | undefined;
  /** `chunked`: streamed without a length; `untyped`: sent with no content-type at all. */
  transfer?: 'chunked' | 'untyped';
  status: number;
  code: ErrorCode;
  /** Milliseconds the server's clock stands ahead of the start while the row runs. */
  at?: number;
  changes?: Changes;
}
const NO_ROUTE = '(no such route)';

type OpaqueMessage = 'registrationRequest' | 'registrationRecord' | 'ke1' | 'ke3';
/** How a body field is attacked beyond its JSON shape. */
type Field =
  | { kind: 'email' | 'wrapKB' | 'code' | 'resetToken' | 'deviceToken' | 'loginId' | 'plain' }
  | { kind: 'opaque'; message: OpaqueMessage }
  /** `unknown`: what a well-formed ticket no registration start sealed gets (issue 8). */
  | { kind: 'registrationTicket'; unknown: ErrorCode };

/** A hand-written row for one endpoint: another URL, body, token or clock than the endpoint's own. */
interface Case {
  name: string;
  code: ErrorCode;
  url?: string;
  body?: unknown;
  token?: string;
  at?: number;
  changes?: Changes;
}

/** A route as the table attacks it: a well-formed base (each row breaks one thing) and its fields. */
interface Endpoint {
  route: string;
  url: string;
  /** The bearer token rows send when they are not about the token; absent on public routes. */
  token?: string;
  body?: Record<string, unknown>;
  fields?: Record<string, Field>;
  bodyLimit?: number;
  cases?: Case[];
}

interface JsonSchema {
  type?: string;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}
interface Operation {
  security?: unknown[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
}
type Documented = Map<string, Operation>;

// The only parts of the database a rejected request may touch, each by design (the `why`), and only on
// the rows that name it: rate-limit counters, a burnt login attempt, a code's guess counter, and a
// session's last-use time. Everything else must be byte-for-byte as before: malformed OPAQUE messages
// included, which are refused before any login limit counts them.
const TAKES_ATTEMPT: Changes = {
  exclude: [{ table: 'login_attempts' }],
  why: 'a KE3 is tried once: the attempt it names is deleted as it is read, whatever the outcome',
};
const TAKES_PROVEN_ATTEMPT: Changes = {
  exclude: [{ table: 'login_attempts' }, { table: 'rate_limits', columns: ['hits'] }],
  why: 'a KE3 that proves the password takes back the guess its start counted, even if the finish is refused',
};
const COUNTS_GUESS: Changes = {
  exclude: [{ table: 'codes', columns: ['attempts'] }],
  why: 'a wrong code counts against the code, which burns after five (issue 2: codes are rate-limited)',
};
const TOUCHES_SESSION: Changes = {
  exclude: [{ table: 'sessions', columns: ['last_used_at'] }],
  why: "the bearer guard records a session's use at most once a minute, and this row comes 10 minutes on",
};

// ---- generated rows ---------------------------------------------------------------------------------

const fail = (code: ErrorCode) => ({ code, status: ERRORS[code].status });
const methodOf = (route: string) => route.split(' ')[0] as string;

function request(endpoint: Endpoint, name: string, body: string | undefined, headers?: Record<string, string>) {
  return {
    name: `${endpoint.route} · ${name}`,
    route: endpoint.route,
    method: methodOf(endpoint.route),
    url: endpoint.url,
    headers: headers ?? {
      ...(body === undefined ? {} : JSON_TYPE),
      ...(endpoint.token === undefined ? {} : bearer(endpoint.token)),
    },
    body,
  };
}

const withChanges = (changes: Changes | undefined) => (changes === undefined ? {} : { changes });

/** The base body with one field replaced (or removed, for `undefined`), as JSON. */
function withField(endpoint: Endpoint, field: string, value: unknown): string {
  const body: Record<string, unknown> = { ...endpoint.body };
  if (value === undefined) delete body[field];
  else body[field] = value;
  return JSON.stringify(body);
}

/** Bodies that are not JSON, not an object, not JSON-typed, or too large: refused before any handler. */
function shapeRows(endpoint: Endpoint): Row[] {
  const base = JSON.stringify(endpoint.body ?? {});
  const auth = endpoint.token === undefined ? {} : bearer(endpoint.token);
  const rows: Row[] = [];
  const add = (name: string, body: string | undefined, code: ErrorCode, extra: Partial<Row> = {}) =>
    rows.push({ ...request(endpoint, name, body), ...fail(code), ...extra });
  for (const malformed of ['{', '[1,', 'hello', '{"email":}', "{'email':'a@b.co'}", '{"a":1,}', '\u0000']) {
    add(`malformed JSON ${JSON.stringify(malformed)}`, malformed, 'LK_INVALID_JSON');
  }
  // secure-json-parse refuses prototype-poisoning keys outright (its protoAction/constructorAction).
  const prepend = (member: string) => (base === '{}' ? `{${member}}` : `{${member},${base.slice(1)}`);
  add('a __proto__ key', prepend('"__proto__":{"polluted":true}'), 'LK_INVALID_JSON');
  add('a constructor.prototype key', prepend('"constructor":{"prototype":{"polluted":true}}'), 'LK_INVALID_JSON');
  add('an empty body typed as JSON', '', 'LK_INVALID_JSON');
  const limit = endpoint.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const oversized = JSON.stringify({ ...endpoint.body, padding: 'A'.repeat(limit + 1024) });
  add(`a body over its ${limit / 1024} KiB limit`, oversized, 'LK_BODY_TOO_LARGE');
  add('a body over its limit, streamed without a length', oversized, 'LK_BODY_TOO_LARGE', { transfer: 'chunked' });
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    rows.push({
      ...request(endpoint, `the base body as ${type.split(';')[0]}`, base, { 'content-type': type, ...auth }),
      ...fail('LK_UNSUPPORTED_MEDIA_TYPE'),
    });
  }
  rows.push({
    ...request(endpoint, 'the base body with no content-type', base, auth),
    ...fail('LK_UNSUPPORTED_MEDIA_TYPE'),
    transfer: 'untyped',
  });
  if (endpoint.body === undefined) return rows;

  // Valid JSON, but not the object the schema asks for.
  for (const value of ['null', '"hello"', '[]', '42', 'true']) add(`a bare ${value} body`, value, 'LK_VALIDATION');
  rows.push({ ...request(endpoint, 'no body at all', undefined), ...fail('LK_VALIDATION') });
  add('an unknown extra field', JSON.stringify({ ...endpoint.body, admin: true }), 'LK_VALIDATION');
  add('an unknown field named toString', JSON.stringify({ ...endpoint.body, toString: 'x' }), 'LK_VALIDATION');
  const first = Object.keys(endpoint.fields ?? {})[0] as string;
  const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
  add(`${first} as 20 000 nested arrays`, `{${JSON.stringify(first)}:${deep}}`, 'LK_VALIDATION');
  add(`${first} holding U+0000`, withField(endpoint, first, 'a\u0000b'), 'LK_VALIDATION');
  return rows;
}

const SAMPLES: [string, unknown][] = [
  ['string', 'text'],
  ['number', 1.5],
  ['integer', 7],
  ['array', []],
  ['object', {}],
  ['null', null],
  ['boolean', true],
];

/** Wrong JSON types, absence, values outside an enum, lengths beyond the schema: the schema's answers. */
function fieldShapeRows(endpoint: Endpoint, documented: Documented, name: string): Row[] {
  const body = bodySchema(documented, endpoint.route);
  const schema = body.properties?.[name] ?? {};
  const rows: Row[] = [];
  const add = (label: string, value: unknown) =>
    rows.push({ ...request(endpoint, `${name} ${label}`, withField(endpoint, name, value)), ...fail('LK_VALIDATION') });
  for (const [type, value] of SAMPLES) if (type !== schema.type) add(`as ${type}`, value);
  if (body.required?.includes(name)) add('missing', undefined);
  if (schema.enum !== undefined) add('outside its enum', 'm.unknown.algorithm');
  if (schema.type === 'string') {
    add('one character over its limit', tooLong(schema));
    if (rejectsEmpty(schema)) add('empty', '');
  }
  return rows;
}

/** The shortest string of one repeated character the schema refuses for length alone. */
function tooLong(schema: JsonSchema): string {
  if (schema.maxLength !== undefined) return 'A'.repeat(schema.maxLength + 1);
  if (schema.enum !== undefined) return `${String(schema.enum[0])}x`;
  const pattern = new RegExp(schema.pattern ?? '^$', 'u');
  for (const char of ['1', 'A']) {
    for (let length = 1; length <= 4096; length++) {
      if (pattern.test(char.repeat(length)) && !pattern.test(char.repeat(length + 1))) return char.repeat(length + 1);
    }
  }
  throw new Error('every string field must be bounded');
}

const rejectsEmpty = (schema: JsonSchema) =>
  (schema.minLength ?? 0) >= 1 ||
  schema.enum !== undefined ||
  (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(''));

/** A canonical base64url string with its last character's unused low bits set (if it has any). */
function withTrailingBits(text: string): string | undefined {
  if (text.length % 4 === 0) return undefined;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(text.at(-1) as string);
  return `${text.slice(0, -1)}${alphabet[last | 1]}`;
}

/** Non-canonical spellings of a bytes field's valid value: the pattern refuses some, the decoder the rest. */
function base64Rows(endpoint: Endpoint, documented: Documented, name: string): Row[] {
  const valid = endpoint.body?.[name] as string;
  const pattern = bodySchema(documented, endpoint.route).properties?.[name]?.pattern ?? '';
  const exactLength = /\{\d+\}\$$/.test(pattern);
  const rows: Row[] = [];
  const add = (label: string, value: string | undefined, code: ErrorCode) => {
    if (value === undefined) return;
    rows.push({ ...request(endpoint, `${name} ${label}`, withField(endpoint, name, value)), ...fail(code) });
  };
  add('with nonzero trailing bits', withTrailingBits(valid), 'LK_BAD_BASE64');
  add('padded with =', `${valid}${'='.repeat((4 - (valid.length % 4)) % 4 || 4)}`, 'LK_VALIDATION');
  add("with '+' (standard alphabet)", `+${valid.slice(1)}`, 'LK_VALIDATION');
  add("with '/' (standard alphabet)", `/${valid.slice(1)}`, 'LK_VALIDATION');
  add('with a space inside', `${valid.slice(0, 4)} ${valid.slice(5)}`, 'LK_VALIDATION');
  add('with a newline inside', `${valid.slice(0, 4)}\n${valid.slice(5)}`, 'LK_VALIDATION');
  // A length of 1 mod 4 cannot be base64 at all; the exact-length pattern of a reset token sees it first.
  const cut = valid.slice(0, Math.floor(valid.length / 4) * 4 - 3);
  add('cut to a length of 1 mod 4', cut, exactLength ? 'LK_VALIDATION' : 'LK_BAD_BASE64');
  return rows;
}

/** Well-formed base64url carrying bytes that are no OPAQUE message of the kind (RFC 9807 §4, ristretto255). */
function opaqueGarbage(message: OpaqueMessage, fx: Fixtures): [string, Uint8Array][] {
  const record = fromBase64Url(fx.valid.registrationRecord);
  switch (message) {
    case 'registrationRequest':
      return [
        ['32 × 0xff (no group element)', filled(32, 0xff)],
        ['the identity element', filled(32, 0)],
        ['31 bytes', random(31)],
        ['33 bytes', random(33)],
      ];
    case 'registrationRecord':
      return [
        ['192 × 0xff (public key no group element)', filled(192, 0xff)],
        ['a record whose public key is the identity', new Uint8Array([...filled(32, 0), ...record.subarray(32)])],
        ['191 bytes', record.subarray(0, 191)],
        ['193 bytes', new Uint8Array([...record, 0])],
      ];
    case 'ke1':
      return [
        ['96 × 0xff', filled(96, 0xff)],
        ['a KE1 whose blinded element is the identity', new Uint8Array([...filled(32, 0), ...random(64)])],
        ['95 bytes', random(95)],
        ['97 bytes', random(97)],
      ];
    case 'ke3':
      return [
        ['63 bytes', random(63)],
        ['65 bytes', random(65)],
        ['1 byte', random(1)],
      ];
  }
}

/** Refused by normalizeEmail (LK_INVALID_EMAIL), or before it by the input check (LK_VALIDATION). */
const BAD_EMAILS: [string, ErrorCode][] = [
  ['not-an-email', 'LK_INVALID_EMAIL'],
  ['no-dot@localhost', 'LK_INVALID_EMAIL'],
  ['two@@example.com', 'LK_INVALID_EMAIL'],
  ['a b@example.com', 'LK_INVALID_EMAIL'],
  ['a@b.co,c', 'LK_INVALID_EMAIL'],
  ['"quoted"@example.com', 'LK_INVALID_EMAIL'],
  ['<angle@example.com>', 'LK_INVALID_EMAIL'],
  ['nel\u0085@example.com', 'LK_INVALID_EMAIL'],
  ['zero\u200bwidth@example.com', 'LK_INVALID_EMAIL'],
  [`${'l'.repeat(65)}@example.com`, 'LK_INVALID_EMAIL'],
  ['nul\u0000@example.com', 'LK_VALIDATION'],
  ['lone\ud800surrogate@example.com', 'LK_VALIDATION'],
];

function semanticRows(endpoint: Endpoint, documented: Documented, name: string, field: Field, fx: Fixtures): Row[] {
  const rows: Row[] = [];
  const add = (label: string, value: string, code: ErrorCode, changes?: Changes) =>
    rows.push({
      ...request(endpoint, `${name} ${label}`, withField(endpoint, name, value)),
      ...fail(code),
      ...withChanges(changes),
    });
  switch (field.kind) {
    case 'email':
      for (const [email, code] of BAD_EMAILS) add(JSON.stringify(email), email, code);
      break;
    case 'opaque':
      rows.push(...base64Rows(endpoint, documented, name));
      for (const [label, bytes] of opaqueGarbage(field.message, fx)) {
        add(`of ${label}`, b64(bytes), 'LK_OPAQUE_MESSAGE_INVALID');
      }
      break;
    case 'wrapKB': {
      rows.push(...base64Rows(endpoint, documented, name));
      const right = fromBase64Url(fx.valid.wrapKB);
      add(`of ${WRAPPED_KB_LENGTH - 1} bytes`, b64(right.subarray(1)), 'LK_WRAPPED_KEY_INVALID');
      add(`of ${WRAPPED_KB_LENGTH + 1} bytes`, b64(new Uint8Array([...right, 0])), 'LK_WRAPPED_KEY_INVALID');
      add('of 1 byte', b64(right.subarray(0, 1)), 'LK_WRAPPED_KEY_INVALID');
      add(
        'with an unknown envelope version',
        b64(new Uint8Array([0x02, ...right.subarray(1)])),
        'LK_WRAPPED_KEY_INVALID',
      );
      break;
    }
    case 'code':
      for (const code of ['1234567', '1234567a', '１２３４５６７８', ' 12345678', '1234 5678', '-1234567']) {
        add(JSON.stringify(code), code, 'LK_VALIDATION');
      }
      break;
    case 'resetToken':
      rows.push(...base64Rows(endpoint, documented, name));
      add('unknown', b64(random(32)), 'LK_RESET_TOKEN_INVALID');
      break;
    case 'registrationTicket': {
      rows.push(...base64Rows(endpoint, documented, name));
      const valid = fromBase64Url(fx.valid.registrationTicket);
      add('of random bytes', b64(random(valid.length)), field.unknown);
      add(
        'with one bit flipped',
        b64(valid.map((byte, i) => (i === valid.length - 1 ? byte ^ 1 : byte))),
        field.unknown,
      );
      break;
    }
    case 'deviceToken':
      // An unknown device token is no refusal: the login goes on as an unknown client's.
      rows.push(...base64Rows(endpoint, documented, name));
      break;
    case 'loginId':
      add('unknown', b64(random(16)), 'LK_LOGIN_ATTEMPT_INVALID');
      add('of control characters', '\u0001\u0002', 'LK_LOGIN_ATTEMPT_INVALID');
      break;
    case 'plain':
      break;
  }
  return rows;
}

function badAuthorization(fx: Fixtures): [string, Record<string, string>][] {
  return [
    ['no Authorization header', {}],
    ['a bare "Bearer"', { authorization: 'Bearer' }],
    ['"Bearer " and nothing', { authorization: 'Bearer ' }],
    ['a Basic credential', { authorization: 'Basic b3duZXI6cGFzc3dvcmQ=' }],
    ['a 42-character token', bearer('A'.repeat(42))],
    ['a 44-character token', bearer('A'.repeat(44))],
    ['a token padded with =', bearer(`${'A'.repeat(43)}=`)],
    ["a token with '+' and '/'", bearer(`+/${'A'.repeat(41)}`)],
    ['a token with nonzero trailing bits', bearer(`${'A'.repeat(42)}B`)],
    ['an unknown token', bearer(b64(random(32)))],
    ['a logged-out token', bearer(fx.revoked.token)],
    ['a token followed by junk', { authorization: `Bearer ${fx.owner.token} junk` }],
    ['two spaces before the token', { authorization: `Bearer  ${fx.owner.token}` }],
  ];
}

function bearerRows(endpoint: Endpoint, fx: Fixtures): Row[] {
  const body = endpoint.body === undefined ? undefined : JSON.stringify(endpoint.body);
  return badAuthorization(fx).map(([label, auth]) => ({
    ...request(endpoint, label, body, { ...(body === undefined ? {} : JSON_TYPE), ...auth }),
    ...fail('LK_UNAUTHORIZED'),
  }));
}

function caseRows(endpoint: Endpoint): Row[] {
  return (endpoint.cases ?? []).map((c) => {
    const body = 'body' in c ? JSON.stringify(c.body) : endpoint.body && JSON.stringify(endpoint.body);
    const token = c.token ?? endpoint.token;
    return {
      ...request({ ...endpoint, url: c.url ?? endpoint.url, ...(token === undefined ? {} : { token }) }, c.name, body),
      ...fail(c.code),
      ...(c.at === undefined ? {} : { at: c.at }),
      ...withChanges(c.changes),
    };
  });
}

function endpointRows(endpoint: Endpoint, documented: Documented, fx: Fixtures): Row[] {
  const rows: Row[] = [];
  if (endpoint.token !== undefined) rows.push(...bearerRows(endpoint, fx));
  // GET requests carry no body, so only the token, the path and the query can be hostile.
  if (methodOf(endpoint.route) !== 'GET') rows.push(...shapeRows(endpoint));
  for (const [name, field] of Object.entries(endpoint.fields ?? {})) {
    rows.push(...fieldShapeRows(endpoint, documented, name), ...semanticRows(endpoint, documented, name, field, fx));
  }
  rows.push(...caseRows(endpoint));
  return rows;
}

// ---- the endpoints --------------------------------------------------------------------------------

const UNKNOWN_ID = b64(random(16));

function accountEndpoints(fx: Fixtures): Endpoint[] {
  const email = { kind: 'email' } as const;
  const opaqueField = (message: OpaqueMessage) => ({ kind: 'opaque', message }) as const;
  return [
    {
      route: 'POST /v1/account/register/start',
      url: '/v1/account/register/start',
      body: { email: 'newcomer@example.com', registrationRequest: fx.registrationRequest },
      fields: { email, registrationRequest: opaqueField('registrationRequest') },
    },
    {
      route: 'POST /v1/account/register/finish',
      url: '/v1/account/register/finish',
      body: { email: 'newcomer@example.com', ...fx.valid },
      fields: {
        email,
        registrationRecord: opaqueField('registrationRecord'),
        wrapKB: { kind: 'wrapKB' },
        registrationTicket: { kind: 'registrationTicket', unknown: 'LK_REGISTRATION_TICKET_INVALID' },
      },
      cases: [
        {
          name: "another email's ticket (a start for one email cannot finish another's sign-up)",
          body: { email: 'newcomer@example.com', ...fx.validForOwner },
          code: 'LK_REGISTRATION_TICKET_INVALID',
        },
        {
          name: 'an email a verified account holds',
          body: { email: 'Owner@Example.com', ...fx.validForOwner },
          code: 'LK_EMAIL_TAKEN',
          changes: {
            // Only the counter moves: the set-up's sign-ups made the address's row in this (frozen) window.
            exclude: [{ table: 'rate_limits', columns: ['hits'] }],
            why: 'the answer tells whether an email is taken, so it is counted against the asking address first',
          },
        },
      ],
    },
    {
      route: 'POST /v1/account/verify',
      url: '/v1/account/verify',
      body: { email: 'ghost@example.com', code: '12345678' },
      // accountId (the sign-up the code is for) is optional: its shape rows are the schema's.
      fields: { email, code: { kind: 'code' }, accountId: { kind: 'plain' } },
      cases: codeCases('verify', fx),
    },
    {
      route: 'POST /v1/account/verify/resend',
      url: '/v1/account/verify/resend',
      body: { email: 'ghost@example.com' },
      fields: { email },
    },
    {
      route: 'POST /v1/session/login/start',
      url: '/v1/session/login/start',
      body: { email: 'ghost@example.com', startLoginRequest: fx.ke1, deviceToken: b64(random(32)) },
      fields: { email, startLoginRequest: opaqueField('ke1'), deviceToken: { kind: 'deviceToken' } },
      cases: [
        {
          name: 'past the per-(account, address) limit',
          body: { email: 'hammered@example.com', startLoginRequest: fx.ke1 },
          code: 'LK_RATE_LIMITED',
          at: RATE_LIMIT_AT,
          changes: { exclude: [{ table: 'rate_limits' }], why: 'a refused attempt still counts in its window' },
        },
      ],
    },
    {
      route: 'POST /v1/session/login/finish',
      url: '/v1/session/login/finish',
      body: { loginId: UNKNOWN_ID, finishLoginRequest: b64(random(64)), deviceName: 'laptop' },
      fields: { loginId: { kind: 'loginId' }, finishLoginRequest: opaqueField('ke3'), deviceName: { kind: 'plain' } },
      cases: loginFinishCases(fx),
    },
    {
      route: 'POST /v1/session/reauth/start',
      url: '/v1/session/reauth/start',
      token: fx.owner.token,
      body: { startLoginRequest: fx.ke1 },
      fields: { startLoginRequest: opaqueField('ke1') },
    },
    {
      route: 'POST /v1/session/reauth/finish',
      url: '/v1/session/reauth/finish',
      token: fx.owner.token,
      body: { loginId: UNKNOWN_ID, finishLoginRequest: b64(random(64)) },
      fields: { loginId: { kind: 'loginId' }, finishLoginRequest: opaqueField('ke3') },
      cases: [
        {
          name: 'a login attempt',
          body: fx.loginForReauth,
          code: 'LK_LOGIN_ATTEMPT_INVALID',
          changes: TAKES_PROVEN_ATTEMPT,
        },
        {
          name: "another session's re-authentication",
          body: fx.othersReauth,
          code: 'LK_LOGIN_ATTEMPT_INVALID',
          changes: TAKES_PROVEN_ATTEMPT,
        },
      ],
    },
    { route: 'POST /v1/session/logout', url: '/v1/session/logout', token: fx.doomed },
    { route: 'GET /v1/sessions', url: '/v1/sessions', token: fx.owner.token },
    {
      route: 'DELETE /v1/sessions/{sessionId}',
      url: `/v1/sessions/${UNKNOWN_ID}`,
      token: fx.owner.token,
      cases: sessionIdCases(fx),
    },
    {
      route: 'GET /v1/account',
      url: '/v1/account',
      token: fx.owner.token,
      cases: [{ name: 'a session past its lifetime', code: 'LK_UNAUTHORIZED', at: SESSION_LIFETIME_MS }],
    },
    {
      route: 'DELETE /v1/account',
      url: '/v1/account',
      token: fx.doomed,
      cases: [staleCase('without a fresh password check')],
    },
    {
      route: 'POST /v1/account/password/start',
      url: '/v1/account/password/start',
      token: fx.owner.token,
      body: { registrationRequest: fx.registrationRequest },
      fields: { registrationRequest: opaqueField('registrationRequest') },
      cases: [staleCase('without a fresh password check')],
    },
    {
      route: 'POST /v1/account/password/finish',
      url: '/v1/account/password/finish',
      token: fx.owner.token,
      body: { ...fx.valid },
      fields: {
        registrationRecord: opaqueField('registrationRecord'),
        wrapKB: { kind: 'wrapKB' },
        registrationTicket: { kind: 'registrationTicket', unknown: 'LK_REGISTRATION_TICKET_INVALID' },
      },
      cases: [
        staleCase('without a fresh password check'),
        {
          name: "a sign-up's ticket, not one from this account's password/start",
          body: { ...fx.valid },
          code: 'LK_REGISTRATION_TICKET_INVALID',
        },
      ],
    },
    {
      route: 'POST /v1/account/reset/start',
      url: '/v1/account/reset/start',
      body: { email: 'ghost@example.com' },
      fields: { email },
    },
    {
      route: 'POST /v1/account/reset/verify',
      url: '/v1/account/reset/verify',
      body: { email: 'ghost@example.com', code: '12345678' },
      fields: { email, code: { kind: 'code' } },
      cases: codeCases('reset', fx),
    },
    {
      route: 'POST /v1/account/reset/register',
      url: '/v1/account/reset/register',
      // A live token, so a garbage registrationRequest is what fails (registering is stateless).
      body: { resetToken: fx.liveResetToken, registrationRequest: fx.registrationRequest },
      fields: { resetToken: { kind: 'resetToken' }, registrationRequest: opaqueField('registrationRequest') },
      cases: resetTokenCases(fx, { registrationRequest: fx.registrationRequest }),
    },
    {
      route: 'POST /v1/account/reset/finish',
      url: '/v1/account/reset/finish',
      // An unknown token: record and wrapKB are checked before it, and nothing here may complete a reset.
      body: { resetToken: b64(random(32)), ...fx.valid },
      fields: {
        resetToken: { kind: 'resetToken' },
        registrationRecord: opaqueField('registrationRecord'),
        wrapKB: { kind: 'wrapKB' },
        // The ticket opens only for the token's account, so with the base's unknown token it never gets there.
        registrationTicket: { kind: 'registrationTicket', unknown: 'LK_RESET_TOKEN_INVALID' },
      },
      cases: [
        ...resetTokenCases(fx, fx.valid),
        {
          // Refused inside the transaction that takes the token, so the token is not spent on it.
          name: "a live token with a sign-up's ticket, not one from this token's reset/register",
          body: { resetToken: fx.liveResetToken, ...fx.valid },
          code: 'LK_REGISTRATION_TICKET_INVALID',
        },
      ],
    },
  ];
}

/** Ten minutes after the last password check (FRESH_AUTH_MS): sensitive routes want a new one. */
function staleCase(name: string): Case {
  return { name, code: 'LK_REAUTH_REQUIRED', at: FRESH_AUTH_MS + 1, changes: TOUCHES_SESSION };
}

/**
 * Issue 8: a delete of backup keys or secrets with a bearer token alone, its password check stale. At a
 * live version holding a key, so "nothing changed" proves the key is still there.
 */
function staleDelete(url: string): Case {
  return { ...staleCase('without a fresh password check (a bearer token alone)'), url };
}

function codeCases(purpose: 'verify' | 'reset', fx: Fixtures): Case[] {
  const wrong = (code: string) => (code === '00000000' ? '11111111' : '00000000');
  const pending =
    purpose === 'verify'
      ? { email: 'pending@example.com', code: fx.pendingCode }
      : { email: 'reset-pending@example.com', code: fx.pendingResetCode };
  const spent =
    purpose === 'verify'
      ? { email: 'used@example.com', code: fx.usedCode }
      : { email: 'spent@example.com', code: fx.spentReset.code };
  return [
    {
      name: 'a wrong code',
      body: { ...pending, code: wrong(pending.code) },
      code: 'LK_CODE_INVALID',
      changes: COUNTS_GUESS,
    },
    { name: 'the right code after it expired', body: pending, code: 'LK_CODE_INVALID', at: CODE_TTL_MS + 1 },
    { name: 'a code already used', body: spent, code: 'LK_CODE_INVALID' },
    {
      name: 'a live code mailed for the other purpose',
      body:
        purpose === 'verify'
          ? { email: 'reset-pending@example.com', code: fx.pendingResetCode }
          : { email: 'pending@example.com', code: fx.pendingCode },
      code: 'LK_CODE_INVALID',
    },
  ];
}

function resetTokenCases(fx: Fixtures, rest: Record<string, string>): Case[] {
  return [
    {
      name: 'an expired token',
      body: { resetToken: fx.expiringResetToken, ...rest },
      code: 'LK_RESET_TOKEN_INVALID',
      at: RESET_TOKEN_TTL_MS + 1,
    },
    {
      name: 'a token already used',
      body: { resetToken: fx.spentReset.resetToken, ...rest },
      code: 'LK_RESET_TOKEN_INVALID',
    },
  ];
}

function loginFinishCases(fx: Fixtures): Case[] {
  return [
    { name: 'a replay of a finish that succeeded', body: fx.replayed, code: 'LK_LOGIN_ATTEMPT_INVALID' },
    {
      name: "a genuine KE3 for another attempt's loginId",
      body: { loginId: fx.crossedB.loginId, finishLoginRequest: fx.crossedA.finishLoginRequest },
      code: 'LK_LOGIN_FAILED',
      changes: TAKES_ATTEMPT,
    },
    {
      name: 'an arbitrary 64-byte KE3 for a live attempt',
      body: { loginId: fx.crossedA.loginId, finishLoginRequest: b64(random(64)) },
      code: 'LK_LOGIN_FAILED',
      changes: TAKES_ATTEMPT,
    },
    {
      name: 'an attempt past its lifetime',
      body: fx.expiringLogin,
      code: 'LK_LOGIN_ATTEMPT_INVALID',
      at: LOGIN_ATTEMPT_TTL_MS + 1,
      changes: TAKES_ATTEMPT,
    },
    {
      name: 'a re-authentication attempt',
      body: fx.reauthForLogin,
      code: 'LK_LOGIN_ATTEMPT_INVALID',
      changes: TAKES_PROVEN_ATTEMPT,
    },
    {
      name: 'an account whose email is not verified',
      body: fx.unverifiedLogin,
      code: 'LK_ACCOUNT_UNVERIFIED',
      changes: TAKES_PROVEN_ATTEMPT,
    },
  ];
}

function sessionIdCases(fx: Fixtures): Case[] {
  const ids: [string, string, ErrorCode][] = [
    ["another account's session id", fx.other.sessionId, 'LK_SESSION_NOT_FOUND'],
    ['a logged-out session id', fx.revoked.sessionId, 'LK_SESSION_NOT_FOUND'],
    ['a session id of control characters', '%01%02', 'LK_SESSION_NOT_FOUND'],
    ['a NUL session id', '%00', 'LK_VALIDATION'],
    ['a session id of 65 characters', 'A'.repeat(65), 'LK_VALIDATION'],
    ['a session id of 1000 characters (over the router limit)', 'A'.repeat(1000), 'LK_VALIDATION'],
    ['an empty session id', '', 'LK_VALIDATION'],
    ['a broken percent-escape', '%ZZ', 'LK_VALIDATION'],
    ['an overlong UTF-8 escape', '%C0%AF', 'LK_VALIDATION'],
  ];
  return ids.map(([name, id, code]) => ({ name, url: `/v1/sessions/${id}`, code }));
}

/** Path and query spellings of a backup version that are no version, or none of this account's. */
function versionCases(url: (version: string) => string): Case[] {
  const cases: [string, string, ErrorCode][] = [
    ['version 0', '0', 'LK_VALIDATION'],
    ['a version with a leading zero', '01', 'LK_VALIDATION'],
    ['a negative version', '-1', 'LK_VALIDATION'],
    ['a version in exponent form', '1e3', 'LK_VALIDATION'],
    ['a version of 10 digits (over 32 bits)', '4294967296', 'LK_VALIDATION'],
    ['a version of 17 digits (over 2^53)', '12345678901234567', 'LK_VALIDATION'],
    ['a version with U+0000', '1%00', 'LK_VALIDATION'],
    ['a version that does not exist', '999', 'LK_BACKUP_NOT_FOUND'],
    ['a deleted version', '2', 'LK_BACKUP_NOT_FOUND'],
  ];
  return cases.map(([name, version, code]) => ({ name, url: url(version), code }));
}

/** Room and session ids in a path: over their length, undecodable, or with U+0000. */
function keyPathCases(url: (room: string) => string): Case[] {
  return [
    { name: 'a room id of 256 characters', url: url('r'.repeat(256)), code: 'LK_VALIDATION' },
    { name: 'a room id with a broken percent-escape', url: url('%ZZ'), code: 'LK_VALIDATION' },
    { name: 'a room id with U+0000', url: url('room%00'), code: 'LK_VALIDATION' },
  ];
}

function uploadCases(): Case[] {
  const keyWith = (patch: Record<string, unknown>) => ({
    rooms: { '!room:example.org': { sessions: { s: { ...BACKED_UP_KEY, ...patch } } } },
  });
  const dataWith = (patch: Record<string, unknown>) =>
    keyWith({ session_data: { ...BACKED_UP_KEY.session_data, ...patch } });
  const sessions = (count: number) =>
    Object.fromEntries(Array.from({ length: count }, (_, i) => [`s${i}`, BACKED_UP_KEY]));
  const rooms = (count: number) =>
    Object.fromEntries(Array.from({ length: count }, (_, i) => [`!r${i}:example.org`, { sessions: sessions(1) }]));
  const cases: [string, unknown, ErrorCode][] = [
    ['an empty room id', { rooms: { '': { sessions: sessions(1) } } }, 'LK_VALIDATION'],
    ['a room id of 256 characters', { rooms: { ['r'.repeat(256)]: { sessions: sessions(1) } } }, 'LK_VALIDATION'],
    [
      'a room id of 6000 random characters',
      { rooms: { [b64(random(4500))]: { sessions: sessions(1) } } },
      'LK_VALIDATION',
    ],
    ['a room without sessions', { rooms: { '!room:example.org': {} } }, 'LK_VALIDATION'],
    ['a negative first_message_index', keyWith({ first_message_index: -1 }), 'LK_VALIDATION'],
    ['a first_message_index of 2^32', keyWith({ first_message_index: 2 ** 32 }), 'LK_VALIDATION'],
    ['a fractional first_message_index', keyWith({ first_message_index: 1.5 }), 'LK_VALIDATION'],
    ['a first_message_index as a string', keyWith({ first_message_index: '0' }), 'LK_VALIDATION'],
    ['a forwarded_count over its bound', keyWith({ forwarded_count: 1_000_001 }), 'LK_VALIDATION'],
    ['is_verified as a string', keyWith({ is_verified: 'true' }), 'LK_VALIDATION'],
    ['session_data without a mac', keyWith({ session_data: { ephemeral: 'ZQ', ciphertext: 'Yw' } }), 'LK_VALIDATION'],
    ['session_data with an extra field', dataWith({ extra: 'x' }), 'LK_VALIDATION'],
    ['a ciphertext over 65 536 characters', dataWith({ ciphertext: 'A'.repeat(65_537) }), 'LK_VALIDATION'],
    ['1001 rooms', { rooms: rooms(1001) }, 'LK_VALIDATION'],
    ['1001 sessions in one room', { rooms: { '!room:example.org': { sessions: sessions(1001) } } }, 'LK_VALIDATION'],
  ];
  return cases.map(([name, body, code]) => ({ name, body, code }));
}

function backupEndpoints(fx: Fixtures): Endpoint[] {
  const token = fx.owner.token;
  const versionBody = { algorithm: BACKUP_ALGORITHM, auth_data: { public_key: PUBLIC_KEY } };
  const versionFields = { algorithm: { kind: 'plain' }, auth_data: { kind: 'plain' } } as const;
  const upload = { rooms: { '!room:example.org': { sessions: { s: BACKED_UP_KEY } } } };
  const spread = (count: number) =>
    Object.fromEntries(
      Array.from({ length: count }, (_, r) => [
        `!r${r}:example.org`,
        { sessions: Object.fromEntries(Array.from({ length: 501 }, (_, s) => [`s${s}`, BACKED_UP_KEY])) },
      ]),
    );
  return [
    {
      route: 'POST /v1/backup/version',
      url: '/v1/backup/version',
      token,
      body: versionBody,
      fields: versionFields,
      cases: authDataCases(),
    },
    {
      route: 'GET /v1/backup/version',
      url: '/v1/backup/version',
      token,
      cases: [{ name: 'an account with no backup', token: fx.other.token, code: 'LK_BACKUP_NOT_FOUND' }],
    },
    {
      route: 'GET /v1/backup/version/{version}',
      url: '/v1/backup/version/999',
      token,
      cases: versionCases((v) => `/v1/backup/version/${v}`),
    },
    {
      route: 'PUT /v1/backup/version/{version}',
      url: '/v1/backup/version/999',
      token,
      body: versionBody,
      fields: { ...versionFields, version: { kind: 'plain' } },
      cases: [
        ...versionCases((v) => `/v1/backup/version/${v}`),
        {
          name: 'a body naming another version',
          url: '/v1/backup/version/1',
          body: { ...versionBody, version: '3' },
          code: 'LK_VALIDATION',
        },
        // Against the live current version: a refused auth_data must leave it as it was.
        ...authDataCases().map((c) => ({ ...c, url: '/v1/backup/version/3' })),
      ],
    },
    {
      route: 'DELETE /v1/backup/version/{version}',
      url: '/v1/backup/version/999',
      token,
      cases: [...versionCases((v) => `/v1/backup/version/${v}`), staleDelete('/v1/backup/version/3')],
    },
    {
      route: 'PUT /v1/backup/keys',
      url: '/v1/backup/keys?version=999',
      token,
      body: upload,
      fields: { rooms: { kind: 'plain' } },
      bodyLimit: 4 * 1024 * 1024,
      cases: [
        ...versionCases((v) => `/v1/backup/keys?version=${v}`),
        ...queryCases('/v1/backup/keys'),
        { name: 'an older live version', url: '/v1/backup/keys?version=1', code: 'LK_WRONG_BACKUP_VERSION' },
        ...uploadCases(),
        // Within every per-room bound, over the per-request one: refused inside the upload's transaction.
        {
          name: '1002 keys over two rooms',
          url: '/v1/backup/keys?version=3',
          body: { rooms: spread(2) },
          code: 'LK_VALIDATION',
        },
      ],
    },
    {
      route: 'GET /v1/backup/keys',
      url: '/v1/backup/keys?version=999',
      token,
      cases: [...versionCases((v) => `/v1/backup/keys?version=${v}`), ...queryCases('/v1/backup/keys'), ...pageCases()],
    },
    {
      route: 'DELETE /v1/backup/keys',
      url: '/v1/backup/keys?version=999',
      token,
      cases: [
        ...versionCases((v) => `/v1/backup/keys?version=${v}`),
        ...queryCases('/v1/backup/keys'),
        staleDelete('/v1/backup/keys?version=3'),
      ],
    },
    {
      route: 'GET /v1/backup/keys/{roomId}/{sessionId}',
      url: '/v1/backup/keys/!room:example.org/unknown?version=3',
      token,
      cases: [
        ...versionCases((v) => `/v1/backup/keys/!room:example.org/session1?version=${v}`),
        ...queryCases('/v1/backup/keys/!room:example.org/session1'),
        ...keyPathCases((room) => `/v1/backup/keys/${room}/session1?version=3`),
      ],
    },
    {
      route: 'DELETE /v1/backup/keys/{roomId}',
      url: '/v1/backup/keys/!room:example.org?version=999',
      token,
      cases: [
        ...versionCases((v) => `/v1/backup/keys/!room:example.org?version=${v}`),
        ...queryCases('/v1/backup/keys/!room:example.org'),
        ...keyPathCases((room) => `/v1/backup/keys/${room}?version=3`),
        staleDelete('/v1/backup/keys/!room:example.org?version=3'),
      ],
    },
    {
      route: 'DELETE /v1/backup/keys/{roomId}/{sessionId}',
      url: '/v1/backup/keys/!room:example.org/session1?version=999',
      token,
      cases: [
        ...versionCases((v) => `/v1/backup/keys/!room:example.org/session1?version=${v}`),
        ...queryCases('/v1/backup/keys/!room:example.org/session1'),
        ...keyPathCases((room) => `/v1/backup/keys/${room}/session1?version=3`),
        staleDelete('/v1/backup/keys/!room:example.org/session1?version=3'),
      ],
    },
  ];
}

function authDataCases(): Case[] {
  const withAuthData = (authData: unknown) => ({ algorithm: BACKUP_ALGORITHM, auth_data: authData });
  const many = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`extra${i}`, i]));
  const nested = JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`) as unknown;
  const cases: [string, unknown][] = [
    ['auth_data without public_key', {}],
    ['a public_key of 65 characters', { public_key: 'A'.repeat(65) }],
    ['a public_key of 31 bytes', { public_key: 'cHVibGljIGtleSBwdWJsaWMga2V5IHB1YmxpYyBrZQ' }],
    ['a public_key of 33 bytes', { public_key: 'cHVibGljIGtleSBwdWJsaWMga2V5IHB1YmxpYyBrZXkh' }],
    ['auth_data with 17 properties', { public_key: PUBLIC_KEY, ...many }],
    ['signatures of the wrong shape', { public_key: PUBLIC_KEY, signatures: { '@u:example.org': 'sig' } }],
    ['a signature over 256 characters', { public_key: PUBLIC_KEY, signatures: { u: { k: 'A'.repeat(257) } } }],
    ['an extra field nested 40 deep', { public_key: PUBLIC_KEY, extra: nested }],
    ['an extra field holding U+0000', { public_key: PUBLIC_KEY, extra: 'a\u0000b' }],
    ['an extra field holding a lone surrogate', { public_key: PUBLIC_KEY, extra: 'a\ud800b' }],
  ];
  return [
    ...cases.map(([name, authData]): Case => ({ name, body: withAuthData(authData), code: 'LK_VALIDATION' })),
    // The key's last character k → l sets a stray low bit: not canonical base64, so not the key it seems.
    {
      name: 'a public_key in non-canonical base64',
      body: withAuthData({ public_key: `${PUBLIC_KEY.slice(0, 42)}l` }),
      code: 'LK_BAD_BASE64',
    },
  ];
}

/** Query strings the schema refuses: no version, two versions, an unknown parameter. */
function queryCases(path: string): Case[] {
  return [
    { name: 'no version in the query', url: path, code: 'LK_VALIDATION' },
    { name: 'the version given twice', url: `${path}?version=3&version=3`, code: 'LK_VALIDATION' },
    { name: 'version as an array parameter', url: `${path}?version[]=3`, code: 'LK_VALIDATION' },
    { name: 'an unknown query parameter', url: `${path}?version=3&admin=1`, code: 'LK_VALIDATION' },
  ];
}

function pageCases(): Case[] {
  const cursor = (value: unknown) => b64(new TextEncoder().encode(JSON.stringify(value)));
  const cases: [string, string][] = [
    ['limit 0', 'limit=0'],
    ['a limit of 6 digits', 'limit=100000'],
    ['a limit in words', 'limit=ten'],
    ['a cursor that is not base64url', 'cursor=%2A%2A'],
    ['a cursor that is not JSON', `cursor=${b64(new TextEncoder().encode('nope'))}`],
    ['a cursor that is not UTF-8', `cursor=${b64(filled(4, 0xff))}`],
    ['a cursor of numbers', `cursor=${cursor([1, 2])}`],
    ['a cursor of three strings', `cursor=${cursor(['a', 'b', 'c'])}`],
    ['a cursor whose ids hold U+0000', `cursor=${cursor(['\u0000', 'x'])}`],
    ['a cursor of 1025 characters', `cursor=${'A'.repeat(1025)}`],
  ];
  return cases.map(([name, query]) => ({ name, url: `/v1/backup/keys?version=3&${query}`, code: 'LK_VALIDATION' }));
}

function secretEndpoints(fx: Fixtures): Endpoint[] {
  const token = fx.owner.token;
  const plain = { kind: 'plain' } as const;
  const badNames = (url: (name: string) => string, what: string, max: number): Case[] => [
    { name: `a ${what} with a space`, url: url('a%20b'), code: 'LK_VALIDATION' },
    { name: `a ${what} with a slash`, url: url('a%2Fb'), code: 'LK_VALIDATION' },
    { name: `a ${what} of ${max + 1} characters`, url: url('a'.repeat(max + 1)), code: 'LK_VALIDATION' },
    { name: `a ${what} with U+0000`, url: url('a%00'), code: 'LK_VALIDATION' },
    { name: `a ${what} with a broken percent-escape`, url: url('%ZZ'), code: 'LK_VALIDATION' },
  ];
  const keyUrl = (id: string) => `/v1/secret-storage/keys/${id}`;
  const secretUrl = (name: string) => `/v1/secret-storage/secrets/${name}`;
  return [
    { route: 'GET /v1/secret-storage/keys', url: '/v1/secret-storage/keys', token },
    {
      route: 'PUT /v1/secret-storage/keys/{keyId}',
      url: keyUrl('k2'),
      token,
      body: { algorithm: STORAGE_ALGORITHM },
      fields: { name: plain, algorithm: plain, passphrase: plain, iv: plain, mac: plain },
      cases: [...badNames(keyUrl, 'key id', 64), ...passphraseCases()],
    },
    {
      route: 'GET /v1/secret-storage/keys/{keyId}',
      url: keyUrl('nokey'),
      token,
      cases: [{ name: 'an unknown key id', code: 'LK_SECRET_NOT_FOUND' }, ...badNames(keyUrl, 'key id', 64)],
    },
    {
      route: 'PUT /v1/secret-storage/default-key',
      url: '/v1/secret-storage/default-key',
      token,
      body: { key: 'nokey' },
      fields: { key: plain },
      cases: [{ name: 'a key never described', code: 'LK_SECRET_NOT_FOUND' }],
    },
    {
      route: 'PUT /v1/secret-storage/secrets/{name}',
      url: secretUrl('m.cross_signing.master'),
      token,
      body: { encrypted: { nokey: ENCRYPTED_SECRET } },
      fields: { encrypted: plain },
      cases: [...badNames(secretUrl, 'secret name', 128), ...encryptedCases()],
    },
    {
      route: 'GET /v1/secret-storage/secrets/{name}',
      url: secretUrl('m.unknown'),
      token,
      cases: [{ name: 'an unknown secret', code: 'LK_SECRET_NOT_FOUND' }, ...badNames(secretUrl, 'secret name', 128)],
    },
    {
      route: 'DELETE /v1/secret-storage/secrets/{name}',
      url: secretUrl('m.unknown'),
      token,
      cases: [
        { name: 'an unknown secret', code: 'LK_SECRET_NOT_FOUND' },
        ...badNames(secretUrl, 'secret name', 128),
        staleDelete(secretUrl('m.unknown')),
      ],
    },
  ];
}

function passphraseCases(): Case[] {
  const pbkdf2 = { algorithm: 'm.pbkdf2', salt: 'c2FsdA', iterations: 500_000 };
  const cases: [string, Record<string, unknown>][] = [
    ['0 PBKDF2 iterations', { ...pbkdf2, iterations: 0 }],
    ['10 000 001 PBKDF2 iterations', { ...pbkdf2, iterations: 10_000_001 }],
    ['fractional PBKDF2 iterations', { ...pbkdf2, iterations: 1.5 }],
    ['a 64-bit PBKDF2 key', { ...pbkdf2, bits: 64 }],
    ['an empty salt', { ...pbkdf2, salt: '' }],
    ['a passphrase algorithm other than m.pbkdf2', { ...pbkdf2, algorithm: 'm.scrypt' }],
    ['a passphrase with an extra field', { ...pbkdf2, extra: 1 }],
  ];
  return cases.map(([name, passphrase]) => ({
    name,
    body: { algorithm: STORAGE_ALGORITHM, passphrase },
    code: 'LK_VALIDATION',
  }));
}

function encryptedCases(): Case[] {
  const under = (count: number) =>
    Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, ENCRYPTED_SECRET]));
  const cases: [string, unknown][] = [
    ['encrypted under no key', {}],
    ['encrypted under 9 keys', under(9)],
    ['encrypted under a key id outside the pattern', { 'bad key!': ENCRYPTED_SECRET }],
    ['an entry without a mac', { k1: { iv: 'aXY', ciphertext: 'Yw' } }],
    ['a ciphertext over 8192 characters', { k1: { ...ENCRYPTED_SECRET, ciphertext: 'A'.repeat(8193) } }],
  ];
  return cases.map(([name, encrypted]) => ({ name, body: { encrypted }, code: 'LK_VALIDATION' }));
}

/** Routes that take no input at all; only the wrong method can be thrown at them. */
const INPUTLESS = ['GET /health', 'GET /v1/config', 'GET /v1/log/key', 'GET /log/checkpoint'];

function routingRows(): Row[] {
  const rows: [string, string, string, string, ErrorCode][] = [
    ['GET /health', 'POST', '/health', 'POST to a GET-only route', 'LK_NOT_FOUND'],
    ['GET /health', 'DELETE', '/health', 'DELETE to a GET-only route', 'LK_NOT_FOUND'],
    ['GET /v1/config', 'POST', '/v1/config', 'POST to a GET-only route', 'LK_NOT_FOUND'],
    ['GET /v1/config', 'PUT', '/v1/config', 'PUT to a GET-only route', 'LK_NOT_FOUND'],
    ['GET /v1/log/key', 'POST', '/v1/log/key', 'POST to a GET-only route', 'LK_NOT_FOUND'],
    ['GET /v1/log/key', 'PUT', '/v1/log/key', 'PUT to a GET-only route', 'LK_NOT_FOUND'],
    ['GET /log/checkpoint', 'POST', '/log/checkpoint', 'POST to a GET-only route', 'LK_NOT_FOUND'],
    ['GET /log/checkpoint', 'DELETE', '/log/checkpoint', 'DELETE to a GET-only route', 'LK_NOT_FOUND'],
    [NO_ROUTE, 'GET', '/v1/nothing-here', 'an unknown path', 'LK_NOT_FOUND'],
    [NO_ROUTE, 'POST', '/v1/account/register', 'a prefix of a real route', 'LK_NOT_FOUND'],
    [NO_ROUTE, 'GET', '/v1/account/', 'a real route with a trailing slash', 'LK_NOT_FOUND'],
    [NO_ROUTE, 'PATCH', '/v1/account', 'an unsupported method on a real path', 'LK_NOT_FOUND'],
    [NO_ROUTE, 'GET', '/v1/%ZZ', 'a broken percent-escape', 'LK_VALIDATION'],
  ];
  return rows.map(([route, method, url, label, code]) => ({
    name: `${method} ${url} · ${label}`,
    route,
    method,
    url,
    headers: {},
    body: undefined,
    ...fail(code),
  }));
}

/**
 * The transparency log's tiles (issue 10): a path that is not a C2SP tile path is LK_LOG_TILE_MALFORMED,
 * and a well-formed tile beyond the newest checkpoint (the log here is empty) LK_LOG_TILE_NOT_FOUND.
 */
function transparencyLogEndpoints(): Endpoint[] {
  const malformed = (name: string, path: string): Case => ({
    name,
    url: `/log/tile/${path}`,
    code: 'LK_LOG_TILE_MALFORMED',
  });
  return [
    {
      route: 'GET /log/tile/{*}',
      url: '/log/tile/0/000',
      cases: [
        { name: 'a full tile beyond the checkpoint', code: 'LK_LOG_TILE_NOT_FOUND' },
        {
          name: 'an entry bundle beyond the checkpoint',
          url: '/log/tile/entries/000.p/1',
          code: 'LK_LOG_TILE_NOT_FOUND',
        },
        malformed('a level above 63', '64/000'),
        malformed('an index not written in 3-digit parts', '0/0'),
        malformed('an index part without its x', '0/001/000'),
        malformed('a width of 0', '0/000.p/0'),
        malformed('a width of 256', '0/000.p/256'),
        malformed('letters for an index', '0/abc'),
        malformed('a path with nothing after the level', '0'),
      ],
    },
  ];
}

/**
 * The OAuth consent API (issue 9). Without the browser's interaction cookie every interaction route is
 * LK_OAUTH_INTERACTION_INVALID, which is also what a forged or unknown uid gets.
 */
function oauthEndpoints(fx: Fixtures): Endpoint[] {
  const token = fx.owner.token;
  const plain = { kind: 'plain' } as const;
  const uid = 'noSuchInteraction';
  const interaction = (path: string) => (id: string) => `/v1/oauth/interaction/${id}/${path}`;
  const badIds = (url: (id: string) => string): Case[] => [
    { name: 'an id with a space', url: url('a%20b'), code: 'LK_VALIDATION' },
    { name: 'an id with a slash', url: url('a%2Fb'), code: 'LK_VALIDATION' },
    { name: 'an id of 65 characters', url: url('a'.repeat(65)), code: 'LK_VALIDATION' },
    { name: 'an id with U+0000', url: url('a%00'), code: 'LK_VALIDATION' },
  ];
  const unbound = { name: 'no interaction cookie', code: 'LK_OAUTH_INTERACTION_INVALID' } as const;
  return [
    {
      route: 'GET /v1/oauth/interaction/{uid}/details',
      url: interaction('details')(uid),
      cases: [unbound, ...badIds(interaction('details'))],
    },
    {
      route: 'POST /v1/oauth/interaction/{uid}/consent',
      url: interaction('consent')(uid),
      token,
      body: {},
      fields: { keys_jwe: plain },
      cases: [unbound, staleCase('without a fresh password check'), ...badIds(interaction('consent'))],
    },
    {
      route: 'POST /v1/oauth/interaction/{uid}/abort',
      url: interaction('abort')(uid),
      cases: [unbound, ...badIds(interaction('abort'))],
    },
    {
      route: 'POST /v1/oauth/key-data',
      url: '/v1/oauth/key-data',
      token,
      body: { client_id: 'nobody', scope: 'openid' },
      fields: { client_id: plain, scope: plain },
      cases: [
        { name: 'an unknown client', code: 'LK_OAUTH_CLIENT_NOT_FOUND' },
        staleCase('without a fresh password check'),
      ],
    },
    { route: 'GET /v1/oauth/grants', url: '/v1/oauth/grants', token },
    {
      route: 'DELETE /v1/oauth/grants/{grantId}',
      url: `/v1/oauth/grants/${uid}`,
      token,
      cases: [
        { name: 'an unknown grant', code: 'LK_OAUTH_GRANT_NOT_FOUND' },
        ...badIds((id) => `/v1/oauth/grants/${id}`),
      ],
    },
  ];
}

function endpointsFor(fx: Fixtures): Endpoint[] {
  return [
    ...accountEndpoints(fx),
    ...backupEndpoints(fx),
    ...secretEndpoints(fx),
    ...oauthEndpoints(fx),
    ...transparencyLogEndpoints(),
  ];
}

function tableFor(fx: Fixtures, documented: Documented): Row[] {
  return [...endpointsFor(fx).flatMap((e) => endpointRows(e, documented, fx)), ...routingRows()];
}

// ---- running a row ------------------------------------------------------------------------------------

function bodySchema(documented: Documented, route: string): JsonSchema {
  return documented.get(route)?.requestBody?.content['application/json']?.schema ?? {};
}

async function documentedRoutes(server: TestServer): Promise<Documented> {
  const openapi = await call<{ paths: Record<string, Record<string, Operation>> }>(server, 'GET', '/docs/json');
  return new Map(
    Object.entries(openapi.paths).flatMap(([path, operations]) =>
      Object.entries(operations).map(([method, operation]) => [`${method.toUpperCase()} ${path}`, operation] as const),
    ),
  );
}

function send(server: TestServer, row: Row): Promise<Response> {
  const init: RequestInit & { duplex?: 'half' } = { method: row.method, headers: row.headers, redirect: 'manual' };
  if (row.body !== undefined && row.transfer === 'chunked') {
    const bytes = new TextEncoder().encode(row.body);
    init.body = new ReadableStream({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 65_536) controller.enqueue(bytes.subarray(i, i + 65_536));
        controller.close();
      },
    });
    init.duplex = 'half';
  } else if (row.body !== undefined && row.transfer === 'untyped') {
    init.body = new Blob([row.body]);
  } else if (row.body !== undefined) {
    init.body = row.body;
  }
  return fetch(`${server.url}${row.url}`, init);
}

async function runRow(server: TestServer, snapshot: () => Promise<DbSnapshot>, row: Row): Promise<void> {
  clock.offset = row.at ?? 0;
  try {
    const exclude = row.changes?.exclude ?? [];
    const before = withoutExcluded(await snapshot(), exclude);
    const response = await send(server, row);
    const text = await response.text();
    expect(response.status, text).toBeLessThan(500);
    expect(response.status, text).toBe(row.status);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    expect(body.code).toBe(row.code);
    expect(typeof body.message === 'string' && body.message.length > 0).toBe(true);
    expect(withoutExcluded(await snapshot(), exclude)).toEqual(before);
  } finally {
    clock.offset = 0;
  }
}

function coverageTest(endpoints: Endpoint[], rows: Row[], documented: Documented): void {
  const covered = new Set(rows.map((row) => row.route));
  for (const route of documented.keys()) expect([...covered], `no hostile rows for ${route}`).toContain(route);
  for (const route of covered) if (route !== NO_ROUTE) expect([...documented.keys()]).toContain(route);
  const attacked = [...endpoints.map((e) => e.route), ...INPUTLESS];
  expect(attacked.sort()).toEqual([...documented.keys()].sort());
  for (const endpoint of endpoints) {
    const guarded = documented.get(endpoint.route)?.security !== undefined;
    expect(guarded, `${endpoint.route} guarded`).toBe(endpoint.token !== undefined);
    const schema = bodySchema(documented, endpoint.route);
    expect(Object.keys(schema.properties ?? {}).sort(), `${endpoint.route} fields`).toEqual(
      Object.keys(endpoint.fields ?? {}).sort(),
    );
    for (const [name, field] of Object.entries(schema.properties ?? {})) {
      if (field.type === 'string') expect(() => tooLong(field), `${endpoint.route} ${name} bounded`).not.toThrow();
    }
  }
}

// ---- one table per storage backend -------------------------------------------------------------------

const sqlite = await startTestServer({}, { now });
const postgres = await startTestServer(
  { databaseUrl: await createTestDatabase(inject('postgresUrl'), 'hostile') },
  { now },
);
const pgClient = new pg.Client({ connectionString: postgres.config.databaseUrl });
await pgClient.connect();
afterAll(async () => {
  await pgClient.end();
  await Promise.all([sqlite.close(), postgres.close()]);
});
const documented = await documentedRoutes(sqlite);

const backends: [string, TestServer, () => Promise<DbSnapshot>][] = [
  ['SQLite', sqlite, async () => snapshotDatabase(join(sqlite.dir, 'latchkey.db'))],
  ['PostgreSQL', postgres, () => snapshotPostgres(pgClient)],
];

for (const [backend, server, snapshot] of backends) {
  const fx = await prepareFixtures(server);
  const rows = tableFor(fx, documented);
  describe(`hostile requests on ${backend}`, () => {
    it('covers every documented route, and agrees with the document on fields and guards', () =>
      coverageTest(endpointsFor(fx), rows, documented));
    for (const row of rows) it(`${row.name} → ${row.status} ${row.code}`, () => runRow(server, snapshot, row));
  });
}
