import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AuthorizationResult,
  finishAuthorization,
  LatchkeyError,
  type Session,
  startAuthorization,
} from '@latchkey/client';
import { createKeysJwe, deriveScopedKey, fromBase64Url, parseScopedKeyData, utf8 } from '@latchkey/core';
import { addOauthClient, addOauthScope, connect, openStore } from '@latchkey/server';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NotesServer, startNotesServer } from '../../examples/notes/server.js';
import { importNoteKey, type NoteKey, openNote, sealNote } from '../../examples/notes/web/note-crypto.js';
import { freePort } from '../support/free-port.js';
import { beginAuthorization, Browser as CookieJar, consent, followToApp } from '../support/oauth.js';
import { findSecrets, type Secret, searchedSize } from '../support/secret-search.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';
import { buildWebApp, launchChromium } from './harness.js';

/**
 * Issue 9's example app end to end: examples/notes on its own origin signs in through the real
 * Latchkey server and its consent page in Chromium, gets its kB-class scoped key, saves a note
 * encrypted under it on its own backend, and a second browser profile signs in and reads it back.
 * Then neither server's files hold the note, the scoped key (its JWK `k` included) or kB in any
 * spelling; and the notes backend takes only this app's access tokens, for their own account.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const KEY_SCOPE = 'https://identity.example.org/apps/notes';
const EMAIL = 'note-taker@example.com';
const PASSWORD = 'notes Pässwörd 7';
const NOTE = 'Meet Ada at the lighthouse at 7 pm; the spare key is under the blue stone. Smörgåsbord 🗝️ 42';
const STEP_MS = 30_000;

let latchkey: TestServer;
let notes: NotesServer;
let browser: Browser;
const dirs: string[] = [];
const temporaryDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

/** The notes page as `npm run example:notes` builds it, into a private directory. */
async function buildNotesPage(): Promise<string> {
  const outDir = temporaryDir('latchkey-notes-page-');
  await build({
    configFile: join(ROOT, 'examples/notes/vite.config.ts'),
    mode: 'production',
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true },
  });
  return outDir;
}

/** As `latchkey oauth client add` / `scope add` do: the notes app, its kB key scope, and another app. */
async function registerApps(databaseUrl: string, notesUrl: string): Promise<void> {
  const store = await openStore(connect(databaseUrl));
  try {
    const now = Date.now();
    await addOauthClient(store, { id: 'notes', name: 'Notes', redirectUris: [`${notesUrl}/callback`] }, now);
    await addOauthClient(store, { id: 'other', name: 'Other', redirectUris: ['http://127.0.0.1:9/cb'] }, now);
    await addOauthScope(store, { scope: KEY_SCOPE, keyClass: 'kB', clients: ['notes'] }, now);
  } finally {
    await store.close();
  }
}

beforeAll(async () => {
  const port = await freePort();
  latchkey = await startTestServer({ webDir: await buildWebApp(), port, publicUrl: `http://127.0.0.1:${port}` });
  dirs.push(latchkey.config.webDir as string);
  notes = await startNotesServer({
    latchkeyUrl: latchkey.url,
    clientId: 'notes',
    keyScope: KEY_SCOPE,
    staticDir: await buildNotesPage(),
    dataFile: join(temporaryDir('latchkey-notes-data-'), 'notes.json'),
  });
  await registerApps(latchkey.config.databaseUrl, notes.url);
  await createVerifiedAccount(latchkey, EMAIL, PASSWORD);
  browser = await launchChromium();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await notes?.close();
  await latchkey?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A browser profile of its own (its own cookies, sessionStorage and IndexedDB) at the notes app. */
async function openProfile(): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(notes.url);
  return { page, errors };
}

/** The kept note key, as any script in the page could reach it: is it extractable, will it export? */
function noteKeyExport(page: Page): Promise<{ extractable: boolean; exported: string }> {
  return page.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = indexedDB.open('latchkey-notes');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const session = await new Promise<{ noteKey: { key: CryptoKey } }>((resolve, reject) => {
      const request = db.transaction('session').objectStore('session').get('current');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const key = session.noteKey.key;
    const exported = await crypto.subtle.exportKey('raw', key).then(
      () => 'exported',
      () => 'refused',
    );
    return { extractable: key.extractable, exported };
  });
}

/** Logs in on Latchkey's consent page, which the notes app's sign-in button led to. */
async function logInOnConsentPage(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign in with Latchkey' }).click();
  await page.waitForURL(`${latchkey.url}/#/oauth/consent/*`);
  await page.getByLabel('Email', { exact: true }).fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in and continue' }).click();
  await page.getByRole('heading', { name: /^Allow .*Notes/ }).waitFor();
}

/**
 * The whole sign-in as a user makes it: "Sign in with Latchkey" in the notes app, Latchkey's consent
 * page (log in, then Allow), and the redirect back to the app, which then shows the note field.
 */
async function signInThroughConsentPage(page: Page): Promise<void> {
  await logInOnConsentPage(page);
  await page.getByRole('button', { name: 'Allow', exact: true }).click();
  await page.waitForURL(`${notes.url}/`);
  await page.getByLabel('Your note', { exact: true }).waitFor();
}

describe('examples/notes in Chromium', () => {
  it('profile A signs in through the consent page and saves a note; profile B signs in and reads it', async () => {
    const a = await openProfile();
    await signInThroughConsentPage(a.page);
    await a.page.getByRole('status').filter({ hasText: 'No note yet' }).waitFor();
    await a.page.getByLabel('Your note', { exact: true }).fill(NOTE);
    await a.page.getByRole('button', { name: 'Save' }).click();
    await a.page.getByRole('status').filter({ hasText: 'Saved, encrypted.' }).waitFor();
    // The page keeps the scoped key as a CryptoKey that no script can read back out.
    expect(await noteKeyExport(a.page)).toEqual({ extractable: false, exported: 'refused' });

    const b = await openProfile();
    await b.page.getByRole('button', { name: 'Sign in with Latchkey' }).waitFor();
    await signInThroughConsentPage(b.page);
    await b.page.getByRole('status').filter({ hasText: 'decrypted in this page' }).waitFor();
    expect(await b.page.getByLabel('Your note', { exact: true }).inputValue()).toBe(NOTE);

    // Profile A, reloaded, keeps its session and key (IndexedDB) and reads the same note.
    await a.page.reload();
    await a.page.getByRole('status').filter({ hasText: 'decrypted in this page' }).waitFor();
    expect(await a.page.getByLabel('Your note', { exact: true }).inputValue()).toBe(NOTE);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it('a user who denies on the consent page comes back signed out, told so with LK_OAUTH_ERROR', async () => {
    const c = await openProfile();
    await logInOnConsentPage(c.page);
    await c.page.getByRole('button', { name: 'Deny', exact: true }).click();
    await c.page.waitForURL(`${notes.url}/`);
    const notice = c.page.locator('[role="alert"] [data-code="LK_OAUTH_ERROR"]');
    await notice.waitFor();
    expect(await notice.locator('.message').textContent()).toMatch(/did not allow Notes/);
    await c.page.getByRole('button', { name: 'Sign in with Latchkey' }).waitFor();
    expect(await c.page.getByLabel('Your note', { exact: true }).isVisible()).toBe(false);
    expect(c.errors).toEqual([]);
  });
});

/** A logged-in SDK session of `email`: kB, kA and a fresh session token (what the consent page holds). */
async function logIn(email: string, password: string): Promise<Session> {
  return latchkey.client().logIn(email, password);
}

/** The scoped key the consent page derives for `session`'s account: kB and the server's key-data. */
async function derivedScopedKey(session: Session) {
  const response = await fetch(`${latchkey.url}/v1/oauth/key-data`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${session.state.token}` },
    body: JSON.stringify({ client_id: 'notes', scope: KEY_SCOPE }),
  });
  expect(response.status).toBe(200);
  const metadata = parseScopedKeyData(await response.json(), [KEY_SCOPE]);
  const account = { uid: fromBase64Url(session.accountId), kA: session.kA, kB: session.kB };
  return { account, metadata, jwk: deriveScopedKey(account, metadata[0] as (typeof metadata)[0]) };
}

/**
 * A sign-in run from Node with the SDK, the consent page played over its API (test/support/oauth.ts):
 * for tokens of other apps and accounts, which the notes backend must tell apart.
 */
async function signInFromNode(
  session: Session,
  options: { clientId: string; redirectUri: string; keys: boolean },
): Promise<AuthorizationResult> {
  const { url, pending } = await startAuthorization({
    issuer: latchkey.url,
    clientId: options.clientId,
    redirectUri: options.redirectUri,
    scopes: options.keys ? ['openid', KEY_SCOPE] : ['openid'],
    keyScopes: options.keys ? [KEY_SCOPE] : [],
    allowInsecureHttp: true,
  });
  const jar = new CookieJar();
  const begun = await beginAuthorization(jar, latchkey.url, url);
  if (begun.uid === undefined) throw new Error(`no interaction: ${JSON.stringify(begun)}`);
  const body: { keys_jwe?: string } = {};
  if (options.keys) {
    const { account, metadata } = await derivedScopedKey(session);
    body.keys_jwe = await createKeysJwe(account, metadata, url.searchParams.get('keys_jwk') as string);
  }
  const granted = await consent(jar, latchkey.url, begun.uid, session.state.token, body);
  expect(granted.status).toBe(200);
  return finishAuthorization(pending, await followToApp(jar, latchkey.url, granted.body.redirectTo as string));
}

/** A request to the notes backend's API, as anyone could send it. */
async function notesApi(method: string, token: string | undefined, init: { body?: string; type?: string } = {}) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (init.type !== undefined) headers['content-type'] = init.type;
  const response = await fetch(`${notes.url}/api/notes`, { method, headers, body: init.body ?? null });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

/** The backend's whole database: one JSON file (empty before the first save). */
function notesFile(): Buffer {
  return existsSync(notes.store.file) ? readFileSync(notes.store.file) : Buffer.alloc(0);
}

/** The ciphertexts of a notes file, by account id. */
function notesOf(file: Buffer): Record<string, string> {
  return file.length === 0 ? {} : (JSON.parse(file.toString('utf8')) as { notes: Record<string, string> }).notes;
}

describe('the notes backend', () => {
  it("takes only this app's access tokens: none, garbage and another app's token are LK_UNAUTHORIZED", async () => {
    const session = await logIn(EMAIL, PASSWORD);
    const other = await signInFromNode(session, {
      clientId: 'other',
      redirectUri: 'http://127.0.0.1:9/cb',
      keys: false,
    });
    // Latchkey's userinfo takes the other app's token as this user's: a backend checking tokens there
    // would let any app the user signed into read and overwrite their notes. Introspection does not.
    const discovery = (await (await fetch(`${latchkey.url}/oauth/.well-known/openid-configuration`)).json()) as {
      userinfo_endpoint: string;
    };
    const userinfo = await fetch(discovery.userinfo_endpoint, {
      headers: { authorization: `Bearer ${other.accessToken}` },
    });
    expect(userinfo.status).toBe(200);
    expect(((await userinfo.json()) as { sub: string }).sub).toBe(session.accountId);

    const before = notesFile();
    for (const token of [undefined, 'not-a-token-at-all-but-long-enough', other.accessToken]) {
      const read = await notesApi('GET', token);
      expect(read.status).toBe(401);
      expect(read.body.code).toBe('LK_UNAUTHORIZED');
      expect(read.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const write = await notesApi('PUT', token, { type: 'application/json', body: '{"ciphertext":"lkn1.x.y.z"}' });
      expect(write.body.code).toBe('LK_UNAUTHORIZED');
    }
    expect(notesFile()).toEqual(before);
  });

  it("keeps each account's ciphertext apart, and refuses a malformed write leaving the file as it was", async () => {
    const second = await createVerifiedAccount(latchkey, 'second@example.com', 'second Pässwörd 8');
    const session = await second.client.logIn('second@example.com', 'second Pässwörd 8');
    const { accessToken } = await signInFromNode(session, {
      clientId: 'notes',
      redirectUri: `${notes.url}/callback`,
      keys: false,
    });
    // The first account's note (saved by the browser test) is not this account's.
    expect(await notesApi('GET', accessToken)).toMatchObject({ status: 200, body: { ciphertext: null } });

    const before = notesFile();
    const refusals: Array<[{ body?: string; type?: string }, number, string]> = [
      [{ type: 'text/plain', body: '{"ciphertext":"lkn1.a.b.c"}' }, 415, 'LK_UNSUPPORTED_MEDIA_TYPE'],
      [{ type: 'application/json', body: '{"ciphertext":' }, 400, 'LK_INVALID_JSON'],
      [{ type: 'application/json', body: '{"ciphertext":42}' }, 400, 'LK_VALIDATION'],
      [{ type: 'application/json', body: '{"ciphertext":"lkn1.a.b.c","extra":1}' }, 400, 'LK_VALIDATION'],
      [{ type: 'application/json', body: '{"ciphertext":"<script>"}' }, 400, 'LK_VALIDATION'],
      [{ type: 'application/json', body: '{"ciphertext":""}' }, 400, 'LK_VALIDATION'],
      [
        { type: 'application/json', body: JSON.stringify({ ciphertext: 'a'.repeat(200_000) }) },
        413,
        'LK_BODY_TOO_LARGE',
      ],
    ];
    for (const [init, status, code] of refusals) {
      expect(await notesApi('PUT', accessToken, init)).toMatchObject({ status, body: { code } });
    }
    expect(await notesApi('DELETE', accessToken)).toMatchObject({
      status: 405,
      body: { code: 'LK_METHOD_NOT_ALLOWED' },
    });
    expect(notesFile()).toEqual(before);

    const written = await notesApi('PUT', accessToken, {
      type: 'application/json',
      body: '{"ciphertext":"lkn1.a.b.c"}',
    });
    expect(written).toMatchObject({ status: 200, body: {} });
    expect(await notesApi('GET', accessToken)).toMatchObject({ body: { ciphertext: 'lkn1.a.b.c' } });
    const stored = { notes: notesOf(notesFile()) };
    expect(stored.notes[session.accountId]).toBe('lkn1.a.b.c');
    // The first account's note (the browser test's) is untouched by the second's write.
    const first = (await logIn(EMAIL, PASSWORD)).accountId;
    expect(stored.notes[first]).toBe(notesOf(before)[first]);
  });
});

describe('the stored note', () => {
  let session: Session;
  let noteKey: NoteKey;
  let stored: string;
  beforeAll(async () => {
    session = await logIn(EMAIL, PASSWORD);
    noteKey = await importNoteKey((await derivedScopedKey(session)).jwk);
    stored = notesOf(notesFile())[session.accountId] as string;
  });

  it('opens under the scoped key kB and the key-data derive, for its own account only', async () => {
    expect(stored).toMatch(/^lkn1\./);
    expect(await openNote(noteKey, session.accountId, stored)).toBe(NOTE);
    // Handed to another account (a dishonest backend's swap), it does not open: the account is bound in.
    const swapped = await openNote(noteKey, 'another-account-id', stored).catch((error: unknown) => error);
    expect((swapped as LatchkeyError).code).toBe('LK_SECRET_DECRYPT_FAILED');
  });

  it('does not open altered, or made under another key id: LK_SECRET_DECRYPT_FAILED, LK_VALIDATION for garbage', async () => {
    const [version, kid, nonce, sealed] = stored.split('.') as [string, string, string, string];
    const bytes = fromBase64Url(sealed);
    bytes[0] = (bytes[0] as number) ^ 1;
    const flipped = [version, kid, nonce, Buffer.from(bytes).toString('base64url')].join('.');
    const rotated = [version, `1${kid}`, nonce, sealed].join('.');
    for (const altered of [flipped, rotated]) {
      const error = await openNote(noteKey, session.accountId, altered).catch((e: unknown) => e);
      expect((error as LatchkeyError).code).toBe('LK_SECRET_DECRYPT_FAILED');
    }
    // Another key with the same kid (what a backend cannot forge without the key) fails too.
    const wrongKey = {
      ...noteKey,
      key: (
        await importNoteKey({ ...(await derivedScopedKey(session)).jwk, k: Buffer.alloc(32, 7).toString('base64url') })
      ).key,
    };
    const wrong = await openNote(wrongKey, session.accountId, stored).catch((e: unknown) => e);
    expect((wrong as LatchkeyError).code).toBe('LK_SECRET_DECRYPT_FAILED');
    for (const garbage of ['', 'lkn1', `lkn2.${kid}.${nonce}.${sealed}`, `${stored}.x`, `lkn1.${kid}.AAAA.${sealed}`]) {
      const error = await openNote(noteKey, session.accountId, garbage).catch((e: unknown) => e);
      expect((error as LatchkeyError).code).toBe('LK_VALIDATION');
    }
    // Each save draws a fresh nonce: the same text twice is two different ciphertexts.
    const once = await sealNote(noteKey, session.accountId, NOTE);
    expect(await sealNote(noteKey, session.accountId, NOTE)).not.toBe(once);
  });
});

describe('after it, at rest', () => {
  it("neither server's files hold the note, the scoped key (its JWK k) or kB in any spelling", async () => {
    const session = await logIn(EMAIL, PASSWORD);
    const { jwk } = await derivedScopedKey(session);
    const scopedKey = fromBase64Url(jwk.k);
    expect(scopedKey).toHaveLength(32);
    const secrets: Secret[] = [
      { name: 'note text', bytes: utf8(NOTE) },
      { name: 'scoped key (JWK k)', bytes: scopedKey },
      { name: 'kB', bytes: session.kB },
    ];
    const notesData = join(notes.store.file, '..');
    const stored = notesOf(notesFile())[session.accountId] as string;
    await latchkey.app.close(); // flushes the WAL into the main file; both are searched anyway
    expect(searchedSize(latchkey.dir).bytes).toBeGreaterThan(10_000);
    // The search sees what is there: the email in Latchkey's database, the ciphertext in the notes file.
    expect(findSecrets(latchkey.dir, [{ name: 'email', bytes: utf8(EMAIL) }])).not.toEqual([]);
    expect(findSecrets(notesData, [{ name: 'ciphertext', bytes: utf8(stored) }])).not.toEqual([]);
    expect(findSecrets(latchkey.dir, secrets)).toEqual([]);
    expect(findSecrets(notesData, secrets)).toEqual([]);
  });
});
