import { type AuthorizationPending, finishAuthorization, startAuthorization } from '@latchkey/client/relier';
import { LatchkeyError } from '@latchkey/core';
import type { KeyValueDb } from './idb.js';
import { importNoteKey, type NoteKey } from './note-crypto.js';

/**
 * Signing in with Latchkey, as any app would: the SDK's startAuthorization() before the redirect out,
 * finishAuthorization() after the redirect back, with what lies between kept in IndexedDB.
 */

/** What the backend's /api/config tells the page. */
export interface NotesConfig {
  issuer: string;
  clientId: string;
  keyScope: string;
  redirectUri: string;
}

/** The signed-in user: their Latchkey account id, the token for our backend, and the note key. */
export interface NotesSession {
  sub: string;
  accessToken: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  noteKey: NoteKey;
}

/** Plain http is for a Latchkey on this machine only (development); anywhere else it must be https. */
function isLoopbackHttp(issuer: string): boolean {
  const url = new URL(issuer);
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

/** Starts a sign-in: keeps its pending half (private key included, non-extractable) and returns where to go. */
export async function beginSignIn(config: NotesConfig, db: KeyValueDb): Promise<URL> {
  const { url, pending } = await startAuthorization({
    issuer: config.issuer,
    clientId: config.clientId,
    redirectUri: config.redirectUri,
    scopes: ['openid', config.keyScope],
    keyScopes: [config.keyScope],
    allowInsecureHttp: isLoopbackHttp(config.issuer),
  });
  await db.put('pending', pending.state, pending);
  return url;
}

/** True when the page was opened as the redirect back from Latchkey. */
export function isCallback(url: URL): boolean {
  return url.pathname === '/callback' && url.searchParams.has('state');
}

/**
 * Finishes the sign-in the callback URL answers: the pending half is taken (used once), the code
 * exchanged, the scoped key decrypted and imported non-extractable. Only then is a session kept.
 */
export async function completeSignIn(config: NotesConfig, db: KeyValueDb, callbackUrl: URL): Promise<NotesSession> {
  const state = callbackUrl.searchParams.get('state') ?? '';
  const pending = await db.get<AuthorizationPending>('pending', state);
  if (pending === undefined) {
    throw new LatchkeyError('LK_OAUTH_STATE_MISMATCH', 'This sign-in was not started here, or is already done.');
  }
  await db.delete('pending', state);
  const result = await finishAuthorization(pending, callbackUrl);
  const jwk = result.scopedKeys[config.keyScope];
  const sub = result.idTokenClaims?.sub;
  if (jwk === undefined || sub === undefined) throw new LatchkeyError('LK_OAUTH_KEYS_MISSING');
  const session: NotesSession = {
    sub,
    accessToken: result.accessToken,
    expiresAt: Date.now() + (result.expiresIn ?? 3600) * 1000,
    noteKey: await importNoteKey(jwk),
  };
  await db.put('session', 'current', session);
  // Any other sign-in left half-way is void now.
  await db.clear('pending');
  return session;
}

/** The kept session, unless it has expired (then it is forgotten). */
export async function currentSession(db: KeyValueDb): Promise<NotesSession | undefined> {
  const session = await db.get<NotesSession>('session', 'current');
  if (session !== undefined && session.expiresAt <= Date.now()) {
    await signOut(db);
    return undefined;
  }
  return session;
}

/** Forgets the session and, with it, the note key in this browser. */
export function signOut(db: KeyValueDb): Promise<void> {
  return db.delete('session', 'current');
}
