import {
  type KeyStretchingConfig,
  LatchkeyClient,
  LatchkeyError,
  LocalKeystore,
  parseKeyStretching,
  type Session,
  type SessionState,
} from '@latchkey/client';
import { batch, signal } from '@preact/signals';
import { clearMessages, showStatus } from './notices.js';
import { type Route, type Screen, screenFor, urlOf } from './routes.js';
import { type Device, Uploads } from './uploads.js';

/** Where the bearer token survives a reload. Keys never go here: a reload forgets kA and kB. */
const STORAGE_KEY = 'latchkey.session';

/** One opening of a screen: going to the screen already shown opens it afresh, as the old page did. */
export interface Visit {
  readonly screen: Screen;
  /** Counts the visits, so each one is a new key for the screen's component. */
  readonly n: number;
}

/**
 * What the screens share: one SDK client for this page's origin, the current session, the screen
 * shown. The state lives in signals: reading `session`, `pendingEmail` or `visit` while a component
 * draws makes it draw again when they change (and the background upload's state is a signal too).
 */
export interface App {
  readonly client: LatchkeyClient;
  readonly session: Session | undefined;
  /** The email being signed up or reset, carried from one screen to the next. */
  pendingEmail: string;
  /** The screen shown now. */
  readonly visit: Visit;
  /** Replaces the session (or ends it with `undefined`) and keeps sessionStorage in step. */
  setSession(session: Session | undefined): void;
  /** Shows another screen; `notice` is shown in the status region once it is there. */
  go(route: Route, notice?: string): void;
  /**
   * Shows the screen the URL's hash names (at start, and when a link or the back button changes it):
   * a screen that needs a session shows the log-in without one.
   */
  openFromHash(notice?: string): void;
  /**
   * This browser's encrypted keystore (IndexedDB) for the current session's account, opened once and
   * closed when the session ends. It needs kB, so only a session with its keys in memory opens it.
   */
  keystore(): Promise<LocalKeystore>;
  /**
   * The background upload of this browser's keys to the account's backup, for a session with its
   * keys in memory (else `undefined`): running from log-in or unlock until the session ends.
   */
  uploads(): Uploads | undefined;
  /**
   * Deletes this browser's keystore for the current account, keys and all: for a store sealed under
   * an old kB (`LK_KEYSTORE_KEY_CHANGED` after a password reset), whose keys nothing can read now.
   */
  eraseKeystore(): Promise<void>;
}

/**
 * One IndexedDB database per account, so two accounts used in one browser never share a store. The
 * name shows only the account id, which the server knows anyway; the records are sealed under kB.
 */
export function keystoreName(accountId: string): string {
  return `latchkey-keystore-${accountId}`;
}

/** Replaced by the build (vite.config.ts) with LATCHKEY_KEY_STRETCHING as it was set then, or ''. */
declare const __LATCHKEY_KEY_STRETCHING__: string | undefined;

/**
 * The key stretching this build expects its server to advertise, if the build pinned one: the SDK
 * then refuses any other (`LK_KDF_MISMATCH`). Unpinned, it takes what the server advertises within its
 * bounds (at least RFC 9106's memory-constrained option), so a cheaper server needs a pinned build.
 */
function pinnedKeyStretching(): { keyStretching?: KeyStretchingConfig } {
  const spec = typeof __LATCHKEY_KEY_STRETCHING__ === 'string' ? __LATCHKEY_KEY_STRETCHING__ : '';
  return spec === '' ? {} : { keyStretching: parseKeyStretching(spec) };
}

/** Builds the app state; the server is always the page's own origin. */
export function createApp(): App {
  const client = new LatchkeyClient({ serverUrl: location.origin, ...pinnedKeyStretching() });
  const resumed = resumeSession(client);
  const state = {
    session: signal(resumed),
    pendingEmail: signal(''),
    visit: signal<Visit>({ screen: screenFor(location.hash, resumed), n: 0 }),
  };
  // The keystore belongs to the session that opened it: another session (or none) closes it.
  let open: { session: Session; keystore: Promise<LocalKeystore> } | undefined;
  // The background upload, like the keystore it reads, belongs to one session.
  let uploading: { session: Session; uploads: Uploads } | undefined;
  const endUploads = () => {
    void uploading?.uploads.dispose();
    uploading = undefined;
  };
  const closeKeystore = () => {
    endUploads();
    const closing = open?.keystore;
    open = undefined;
    // Closing wipes the store's keys from memory; a store that never opened has nothing to wipe.
    void closing?.then((keystore) => keystore.close()).catch(() => undefined);
  };
  const app: App = {
    client,
    get session() {
      return state.session.value;
    },
    get pendingEmail() {
      return state.pendingEmail.value;
    },
    set pendingEmail(email) {
      state.pendingEmail.value = email;
    },
    get visit() {
      return state.visit.value;
    },
    setSession(next) {
      if (open !== undefined && open.session !== next) closeKeystore();
      if (uploading !== undefined && uploading.session !== next) endUploads();
      state.session.value = next;
      if (next === undefined) sessionStorage.removeItem(STORAGE_KEY);
      else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next.state));
      // A log-in or an unlock starts the upload at once, whatever screen comes next.
      app.uploads();
    },
    go(route, notice) {
      // Screens change at once (pushState fires no hashchange), so a message shown right after `go` stays.
      if (location.hash !== `#/${route}`) history.pushState(null, '', `#/${route}`);
      app.openFromHash(notice);
    },
    openFromHash(notice) {
      const screen = screenFor(location.hash, state.session.peek());
      batch(() => {
        clearMessages();
        showStatus(notice);
        state.visit.value = { screen, n: state.visit.peek().n + 1 };
      });
      if (location.hash !== urlOf(screen)) history.replaceState(null, '', urlOf(screen));
    },
    // The actions below read the session without following it (peek): they are not views.
    keystore() {
      const session = state.session.peek();
      if (session === undefined) return Promise.reject(new LatchkeyError('LK_NOT_LOGGED_IN'));
      if (open?.session === session) return open.keystore;
      closeKeystore();
      // An async wrapper, so a session without its keys rejects instead of throwing here.
      const current = { session, keystore: (async () => session.openKeystore(keystoreName(session.accountId)))() };
      open = current;
      // A failed open (keys not in memory, IndexedDB refused) is not kept: the next call tries again.
      current.keystore.catch(() => {
        if (open === current) open = undefined;
      });
      return current.keystore;
    },
    uploads() {
      const session = state.session.peek();
      if (session === undefined || !session.hasKeys) return undefined;
      if (uploading?.session === session) return uploading.uploads;
      endUploads();
      const device: Promise<Device> = app
        .keystore()
        .then((keystore) => ({ keystore, backup: session.keyBackup(keystore) }));
      uploading = { session, uploads: new Uploads(device) };
      return uploading.uploads;
    },
    async eraseKeystore() {
      const session = state.session.peek();
      if (session === undefined) throw new LatchkeyError('LK_NOT_LOGGED_IN');
      const closing = open?.keystore;
      closeKeystore();
      // The database is deleted once no connection holds it: wait for this tab's to close.
      await closing?.then((keystore) => keystore.close()).catch(() => undefined);
      await LocalKeystore.erase(keystoreName(session.accountId));
    },
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
