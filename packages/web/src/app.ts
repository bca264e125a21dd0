import { LatchkeyClient, type Session, type SessionState } from '@latchkey/client';

/** Where the bearer token survives a reload. Keys never go here: a reload forgets kA and kB. */
const STORAGE_KEY = 'latchkey.session';

/** The screens of the app, addressed by the URL hash (`#/login`), so any static server can host it. */
export type Route = 'signup' | 'verify' | 'login' | 'account' | 'reset';

/** What the screens share: one SDK client for this page's origin and the current session, if any. */
export interface App {
  readonly client: LatchkeyClient;
  session: Session | undefined;
  /** The email being signed up or reset, carried from one screen to the next. */
  pendingEmail: string;
  /** Replaces the session (or ends it with `undefined`) and keeps sessionStorage in step. */
  setSession(session: Session | undefined): void;
  /** Shows another screen; `notice` is shown in the status region once it is there. */
  go(route: Route, notice?: string): void;
}

/** Builds the app state; the server is always the page's own origin. */
export function createApp(go: App['go']): App {
  const client = new LatchkeyClient({ serverUrl: location.origin });
  const app: App = {
    client,
    session: resumeSession(client),
    pendingEmail: '',
    setSession(session) {
      app.session = session;
      if (session === undefined) sessionStorage.removeItem(STORAGE_KEY);
      else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session.state));
    },
    go,
  };
  return app;
}

/** A session saved by an earlier load of this tab: it has the token but not the keys. */
function resumeSession(client: LatchkeyClient): Session | undefined {
  const saved = sessionStorage.getItem(STORAGE_KEY);
  if (saved === null) return undefined;
  try {
    const state = JSON.parse(saved) as SessionState;
    if (typeof state.token !== 'string' || state.expiresAt <= Date.now()) throw new Error('expired');
    return client.resume(state);
  } catch {
    sessionStorage.removeItem(STORAGE_KEY);
    return undefined;
  }
}
