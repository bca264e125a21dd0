import {
  type KeyStretchingConfig,
  LatchkeyClient,
  LatchkeyError,
  LocalKeystore,
  parseKeyStretching,
  type Session,
  type SessionState,
} from '@latchkey/client';
import { type Device, Uploads } from './uploads.js';

/** Where the bearer token survives a reload. Keys never go here: a reload forgets kA and kB. */
const STORAGE_KEY = 'latchkey.session';

/** The screens of the app, addressed by the URL hash (`#/login`), so any static server can host it. */
export type Route = 'signup' | 'verify' | 'login' | 'account' | 'backup' | 'reset';

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
export function createApp(go: App['go']): App {
  const client = new LatchkeyClient({ serverUrl: location.origin, ...pinnedKeyStretching() });
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
    session: resumeSession(client),
    pendingEmail: '',
    setSession(session) {
      if (open !== undefined && open.session !== session) closeKeystore();
      if (uploading !== undefined && uploading.session !== session) endUploads();
      app.session = session;
      if (session === undefined) sessionStorage.removeItem(STORAGE_KEY);
      else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session.state));
      // A log-in or an unlock starts the upload at once, whatever screen comes next.
      app.uploads();
    },
    go,
    keystore() {
      const session = app.session;
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
      const session = app.session;
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
      const session = app.session;
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
