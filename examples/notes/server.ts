import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ErrorCode, LatchkeyError } from '@latchkey/core';
import { type Introspector, latchkeyIntrospector, type TokenOwner } from './introspect.js';
import { NoteStore } from './note-store.js';

/**
 * The notes app's own backend, on its own origin: it serves the built page and keeps ONE opaque
 * ciphertext per Latchkey account. It never sees the key or a note: the page encrypts under the scoped
 * key Latchkey gave it. Each API request is authenticated by its Latchkey access token (introspect.ts).
 *
 *   GET /api/config    what the page needs to sign in (issuer, client id, key scope, redirect URI)
 *   GET /api/notes     { ciphertext: string | null }
 *   PUT /api/notes     { ciphertext: string } → {}
 *
 * Errors answer as Latchkey's do: `{ code, message }` with a stable LK_* code.
 */

export interface NotesServerOptions {
  /** The Latchkey server's URL (its issuer is this + `/oauth`). */
  latchkeyUrl: string;
  /** The client id registered with `latchkey oauth client add`. */
  clientId: string;
  /** The key-bearing scope registered with `latchkey oauth scope add --keys kB`. */
  keyScope: string;
  /** The built page (Vite's output directory). */
  staticDir: string;
  /** The JSON file the ciphertexts are kept in. */
  dataFile: string;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface NotesServer {
  /** Where the app is, e.g. http://127.0.0.1:8480; its redirect URI is this + `/callback`. */
  url: string;
  store: NoteStore;
  close(): Promise<void>;
}

/** A note of a few pages, encrypted and encoded, with room to spare; anything larger is refused. */
export const MAX_CIPHERTEXT = 96 * 1024;
const MAX_BODY = MAX_CIPHERTEXT + 1024;
/** What the page sends back: URL-safe characters only (its envelope is dot-separated base64url). */
const CIPHERTEXT = /^[A-Za-z0-9._-]+$/;

/** The page's strict policy: its own scripts and styles only, and it may talk to Latchkey and to us. */
function contentSecurityPolicy(latchkeyOrigin: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ${latchkeyOrigin}`,
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
/** The page lives at `/` and is also the redirect URI's target; its assets are Vite's hashed files. */
const PAGE_PATHS = new Set(['/', '/callback']);
const ASSET_PATH = /^\/assets\/[A-Za-z0-9_.-]+\.(js|css|svg)$/;

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body));
}

function sendError(response: ServerResponse, error: LatchkeyError): void {
  if (error.code === 'LK_UNAUTHORIZED') response.setHeader('www-authenticate', 'Bearer realm="notes"');
  sendJson(response, error.status, error.toBody());
}

function fail(code: ErrorCode, message?: string): never {
  throw new LatchkeyError(code, message);
}

/**
 * The request's body, at most {@link MAX_BODY} bytes. A larger one is read on to its end (up to a
 * bound) before LK_BODY_TOO_LARGE goes out, so the client reads the answer rather than a reset.
 */
async function readBody(request: IncomingMessage): Promise<string> {
  if (Number(request.headers['content-length']) > 4 * MAX_BODY) {
    request.destroy();
    fail('LK_BODY_TOO_LARGE');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
    else if (size > 4 * MAX_BODY) break;
  }
  if (size > MAX_BODY) fail('LK_BODY_TOO_LARGE');
  return Buffer.concat(chunks).toString('utf8');
}

/** PUT's body: `{ "ciphertext": "<what the page made>" }` and nothing else. */
async function ciphertextOf(request: IncomingMessage): Promise<string> {
  if (!/^application\/json\s*(;|$)/i.test(request.headers['content-type'] ?? '')) fail('LK_UNSUPPORTED_MEDIA_TYPE');
  let body: unknown;
  try {
    body = JSON.parse(await readBody(request));
  } catch (error) {
    if (error instanceof LatchkeyError) throw error;
    fail('LK_INVALID_JSON');
  }
  const fields = typeof body === 'object' && body !== null ? Object.keys(body) : [];
  const ciphertext = (body as { ciphertext?: unknown } | null)?.ciphertext;
  if (fields.length !== 1 || typeof ciphertext !== 'string') {
    fail('LK_VALIDATION', 'Send exactly { "ciphertext": string }.');
  }
  if (ciphertext.length > MAX_CIPHERTEXT) fail('LK_BODY_TOO_LARGE');
  if (!CIPHERTEXT.test(ciphertext)) fail('LK_VALIDATION', 'The ciphertext must be non-empty base64url and dots.');
  return ciphertext;
}

async function requestOwner(request: IncomingMessage, introspect: Introspector): Promise<TokenOwner> {
  const match = /^Bearer ([^\s]+)$/.exec(request.headers.authorization ?? '');
  if (match === null) fail('LK_UNAUTHORIZED', 'Sign in with Latchkey: send its access token as the bearer.');
  const owner = await introspect(match[1] as string);
  if (owner === undefined) fail('LK_UNAUTHORIZED', 'The access token is not valid for this app; sign in again.');
  return owner;
}

async function notesApi(
  request: IncomingMessage,
  response: ServerResponse,
  introspect: Introspector,
  store: NoteStore,
) {
  if (request.method !== 'GET' && request.method !== 'PUT') fail('LK_METHOD_NOT_ALLOWED');
  const { sub } = await requestOwner(request, introspect);
  if (request.method === 'GET') return sendJson(response, 200, { ciphertext: store.get(sub) ?? null });
  await store.put(sub, await ciphertextOf(request));
  sendJson(response, 200, {});
}

async function sendStatic(response: ServerResponse, staticDir: string, path: string, policy: string) {
  const file = PAGE_PATHS.has(path) ? 'index.html' : path.slice(1);
  const content = await readFile(join(staticDir, file)).catch(() => fail('LK_NOT_FOUND'));
  response.writeHead(200, {
    'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'content-security-policy': policy,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    // The page must be fetched fresh (it names the current assets); the hashed assets never change.
    'cache-control': file === 'index.html' ? 'no-cache' : 'public, max-age=31536000, immutable',
  });
  response.end(content);
}

/** Starts the notes backend; see {@link NotesServerOptions}. */
export async function startNotesServer(options: NotesServerOptions): Promise<NotesServer> {
  const issuer = `${options.latchkeyUrl.replace(/\/+$/, '')}/oauth`;
  const introspect = latchkeyIntrospector({ issuer, clientId: options.clientId });
  const store = await NoteStore.open(options.dataFile);
  const policy = contentSecurityPolicy(new URL(options.latchkeyUrl).origin);
  let config: object = {};

  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://notes').pathname;
    const handled = (async () => {
      if (path === '/api/notes') return notesApi(request, response, introspect, store);
      if (request.method !== 'GET' && request.method !== 'HEAD') fail('LK_METHOD_NOT_ALLOWED');
      if (path === '/api/config') return sendJson(response, 200, config);
      if (PAGE_PATHS.has(path) || ASSET_PATH.test(path)) return sendStatic(response, options.staticDir, path, policy);
      fail('LK_NOT_FOUND');
    })();
    handled.catch((error: unknown) => {
      if (!(error instanceof LatchkeyError)) console.error('notes: unexpected error:', error);
      if (!response.headersSent)
        sendError(response, error instanceof LatchkeyError ? error : new LatchkeyError('LK_INTERNAL'));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  config = { issuer, clientId: options.clientId, keyScope: options.keyScope, redirectUri: `${url}/callback` };
  return {
    url,
    store,
    close: () => new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}

/** `npm run example:notes`: settings from the environment (or `--port N`), as the README lists them. */
async function main(): Promise<void> {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const portFlag = process.argv.indexOf('--port');
  const port = Number(portFlag > 0 ? process.argv[portFlag + 1] : (process.env.NOTES_PORT ?? 8480));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`not a port: ${port}`);
  const latchkeyUrl = process.env.LATCHKEY_URL ?? 'http://127.0.0.1:8470';
  const notes = await startNotesServer({
    latchkeyUrl,
    clientId: process.env.NOTES_CLIENT_ID ?? 'notes',
    keyScope: process.env.NOTES_KEY_SCOPE ?? 'https://notes.example/keys',
    staticDir: resolve(process.env.NOTES_STATIC_DIR ?? join(here, 'dist')),
    dataFile: resolve(process.env.NOTES_DATA_FILE ?? join(here, 'data', 'notes.json')),
    port,
  });
  console.log(`notes: ${notes.url} (signs in with Latchkey at ${latchkeyUrl}; redirect URI ${notes.url}/callback)`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error('notes:', error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
