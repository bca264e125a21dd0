import type { Session } from '@latchkey/client';

/** The screens of the app, addressed by the URL hash (`#/login`), so any static server can host it. */
export type Route = 'signup' | 'verify' | 'login' | 'account' | 'backup' | 'reset';

const ROUTES: readonly Route[] = ['signup', 'verify', 'login', 'account', 'backup', 'reset'];

/**
 * A screen to show, with what it needs: the screens of a signed-in account carry its session, so one
 * cannot be opened without it; the OAuth consent page carries the authorization's interaction uid.
 */
export type Screen =
  | { route: 'signup' | 'verify' | 'login' | 'reset' }
  | { route: 'account' | 'backup'; session: Session }
  | { route: 'oauth/consent'; uid: string };

/** Where the server sends the browser for an app's authorization: `#/oauth/consent/<uid>`. */
const CONSENT = /^#\/oauth\/consent\/([^/?#]+)$/;

/**
 * The screen a URL hash names. The account and backup screens need a session, and show the log-in
 * without one; an unknown hash shows the account when signed in, else the log-in.
 */
export function screenFor(hash: string, session: Session | undefined): Screen {
  const consent = CONSENT.exec(hash)?.[1];
  // The consent page signs in on the page itself when it must, so it needs no session to open.
  if (consent !== undefined) return { route: 'oauth/consent', uid: decodeUid(consent) };
  const name = hash.replace(/^#\/?/, '');
  const route = ROUTES.find((r) => r === name) ?? (session === undefined ? 'login' : 'account');
  if (route === 'account' || route === 'backup') return session === undefined ? { route: 'login' } : { route, session };
  return { route };
}

/** The uid as the server wrote it into the URL (it escapes nothing in practice; a bad escape is kept as is). */
function decodeUid(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The URL hash that names `screen`. */
export function urlOf(screen: Screen): string {
  return screen.route === 'oauth/consent' ? `#/oauth/consent/${encodeURIComponent(screen.uid)}` : `#/${screen.route}`;
}

/** The tab's title for `screen`. */
export function titleOf(screen: Screen): string {
  return `Latchkey · ${screen.route === 'oauth/consent' ? 'authorize an app' : screen.route}`;
}

/** Whether `screen` belongs to a signed-in account (its fields are filled, not empty to type in). */
export function signedIn(screen: Screen): boolean {
  return 'session' in screen;
}
