import { LatchkeyError, type Session } from '@latchkey/client';
import { type Signal, useSignal } from '@preact/signals';
import { Fragment } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import type { App } from './app.js';
import { ActionForm, Busy, Button, Field, Link, Panel, runAction, textIn, useScope } from './controls.js';
import { count, DERIVING, requireSame, when } from './format.js';
import { type Feedback, FeedbackRegions, plainMessage, showError, useFeedback } from './notices.js';
import { GrantedApps } from './oauth-grants.js';
import type { Uploads } from './uploads.js';

type AccountInfo = Awaited<ReturnType<Session['account']>>;
type SessionList = Awaited<ReturnType<Session['listSessions']>>;
/** The sessions list: loading, loaded, or not loaded at the first try (a later refresh keeps the last). */
type Sessions = SessionList | 'loading' | 'failed';

/** The logged-in home: account facts, the account key check, sessions, password change, log out, delete. */
export function AccountScreen({ app, session }: { app: App; session: Session }) {
  const guarded = guardSession(app);
  const summary = useSignal<AccountInfo | undefined>(undefined);
  const summarySay = useFeedback();
  const sessions = useSignal<Sessions>('loading');
  const loadSummary = guarded(async () => {
    summary.value = await session.account();
  });
  const loadSessions = guarded(async () => {
    sessions.value = await session.listSessions();
  });
  const reload = async () => {
    await Promise.all([loadSummary().catch((error) => summarySay.error(error)), loadSessions()]);
  };
  const sessionsSay = useFeedback();
  // Load both in the background; a failure shows in the panel that was loading.
  useEffect(() => {
    void loadSummary().catch((error) => summarySay.error(error));
    void loadSessions().catch((error) => {
      // Not "Loading…" forever: the list is empty for now, and the reason shows beside Refresh.
      sessions.value = 'failed';
      sessionsSay.error(error);
    });
  }, []);
  return (
    <div class="stack">
      <Panel title="Your account">
        <Summary info={summary.value} />
        <FeedbackRegions say={summarySay} />
      </Panel>
      <KeysPanel app={app} session={session} guarded={guarded} />
      <SessionsPanel session={session} sessions={sessions} load={loadSessions} guarded={guarded} say={sessionsSay} />
      <GrantedApps app={app} session={session} />
      <ChangePasswordPanel session={session} guarded={guarded} reload={reload} />
      <LeavePanel app={app} session={session} guarded={guarded} />
    </div>
  );
}

/** Wraps a screen's action so that a failure from an ended session also ends it here. */
export type Guard = (action: () => Promise<void>) => () => Promise<void>;

/** The {@link Guard} for `app`'s signed-in screens: the error still shows, and the log-in follows. */
export function guardSession(app: App): Guard {
  return (action) => async () => {
    try {
      await action();
    } catch (error) {
      endIfRevoked(app, error);
      throw error;
    }
  };
}

/** A session revoked elsewhere (or by a password change) is over here too: back to the log-in. */
function endIfRevoked(app: App, error: unknown): void {
  if (error instanceof LatchkeyError && error.code === 'LK_UNAUTHORIZED') {
    app.session?.forgetKeys();
    app.setSession(undefined);
    app.go('login');
    // The screen the action ran on is gone: say why on the log-in screen, at its top.
    showError(error);
  }
}

function Summary({ info }: { info: AccountInfo | undefined }) {
  const facts: Array<[string, string]> =
    info === undefined
      ? []
      : [
          ['Email', info.email],
          ['Account ID', info.accountId],
          ['Email verified', info.verified ? 'yes' : 'no'],
          ['Created', when(info.createdAt)],
          ['Password changed', when(info.passwordChangedAt)],
          ['Keys changed', when(info.keysChangedAt)],
        ];
  return (
    <dl class="facts">
      {facts.map(([term, value]) => (
        <Fragment key={term}>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </Fragment>
      ))}
    </dl>
  );
}

/**
 * The account key check (a fingerprint of kB) when the keys are in memory; after a reload they are
 * not, so offer to unlock. Users meet kB only as "your account key": what it does, not its name.
 */
function KeysPanel({ app, session, guarded }: { app: App; session: Session; guarded: Guard }) {
  const password = useRef<HTMLInputElement>(null);
  if (session.hasKeys) {
    return (
      <Panel title="Your keys">
        <p class="key-check">
          <span id="key-check-label">Account key check: </span>
          {/* biome-ignore lint/a11y/useAriaPropsSupportedByRole: the label ties the check to its words for tools that follow it; as the page always had it */}
          <code class="fingerprint" data-testid="kb-fingerprint" aria-labelledby="key-check-label">
            {session.kBFingerprint}
          </code>
        </p>
        <p class="aside">
          Your account key encrypts your data in this browser; the server cannot read it. Compare this check on two
          devices to see that both hold the same key. A password change keeps it; a password reset makes a new one, and
          then the check changes too.
        </p>
        <p>
          <Link route="backup">Key backup</Link>: back up the keys on this device, or restore them on a new one with
          your recovery key.
        </p>
      </Panel>
    );
  }
  const unlock = guarded(async () => {
    await session.reauthenticate(textIn(password));
    app.setSession(session);
    app.go('account', 'Keys unlocked.');
  });
  return (
    <Panel title="Your keys">
      <p class="aside">This tab was reloaded, so your keys are no longer in memory. Unlock them:</p>
      <ActionForm submit="Unlock" progress={DERIVING} action={unlock}>
        <Field
          label="Password to unlock keys"
          name="unlock-password"
          type="password"
          autocomplete="current-password"
          inputRef={password}
        />
      </ActionForm>
    </Panel>
  );
}

function SessionsPanel(props: {
  session: Session;
  sessions: Signal<Sessions>;
  load: () => Promise<void>;
  guarded: Guard;
  say: Feedback;
}) {
  const { session, load, guarded, say } = props;
  const panel = useScope();
  const table = useScope();
  const refresh = () => runAction(panel, say, 'Loading sessions…', load);
  const revoke = (sessionId: string) =>
    runAction(
      table,
      say,
      'Revoking…',
      guarded(async () => {
        await session.revokeSession(sessionId);
        await load();
      }),
    );
  const sessions = props.sessions.value;
  return (
    <Panel title="Sessions" scope={panel}>
      <p class="aside">Every place this account is logged in. Revoking one logs it out at once.</p>
      <Busy scope={table}>
        <div class="sessions" aria-busy={table.value ? 'true' : undefined}>
          {sessions === 'loading' && <p>Loading sessions…</p>}
          {sessions === 'failed' && <p class="aside">The sessions could not be loaded.</p>}
          {typeof sessions === 'object' && <SessionsTable list={sessions} onRevoke={(id) => void revoke(id)} />}
        </div>
      </Busy>
      <div class="form-end">
        <Button class="secondary" onClick={() => void refresh()}>
          Refresh sessions
        </Button>
        <FeedbackRegions say={say} />
      </div>
    </Panel>
  );
}

function SessionsTable({ list, onRevoke }: { list: SessionList; onRevoke: (sessionId: string) => void }) {
  const head = ['Device', 'Signed in', 'Last used', 'Expires', ''];
  return (
    <table>
      <thead>
        <tr>
          {head.map((title) => (
            <th key={title} scope="col">
              {title}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {list.map((s) => {
          const name = s.deviceName ?? 'Unnamed device';
          return (
            <tr key={s.sessionId} data-testid="session-row">
              <td>{name}</td>
              <td>{when(s.createdAt)}</td>
              <td>{when(s.lastUsedAt)}</td>
              <td>{when(s.expiresAt)}</td>
              <td>
                {s.current ? (
                  <span class="badge">This session</span>
                ) : (
                  <Button
                    class="danger small"
                    aria-label={`Revoke ${name}, signed in ${when(s.createdAt)}`}
                    onClick={() => onRevoke(s.sessionId)}
                  >
                    Revoke
                  </Button>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function ChangePasswordPanel(props: { session: Session; guarded: Guard; reload: () => Promise<void> }) {
  const current = useRef<HTMLInputElement>(null);
  const next = useRef<HTMLInputElement>(null);
  const confirm = useRef<HTMLInputElement>(null);
  const change = (say: Feedback) =>
    props.guarded(async () => {
      requireSame(textIn(next), textIn(confirm));
      const { revokedSessions } = await props.session.changePassword(textIn(current), textIn(next));
      for (const input of [current, next, confirm]) if (input.current !== null) input.current.value = '';
      const ended = revokedSessions === 1 ? '1 other session was' : `${revokedSessions} other sessions were`;
      say.success(`Password changed; your account key stays the same. ${ended} logged out.`);
      await props.reload();
    })();
  return (
    <Panel title="Change password">
      <p class="aside">Your account key stays the same. Every other session is logged out.</p>
      <ActionForm submit="Change password" progress={DERIVING} action={change}>
        <Field
          label="Current password"
          name="current"
          type="password"
          autocomplete="current-password"
          inputRef={current}
        />
        <Field label="New password" name="new" type="password" autocomplete="new-password" inputRef={next} />
        <Field
          label="Confirm new password"
          name="confirm"
          type="password"
          autocomplete="new-password"
          inputRef={confirm}
        />
      </ActionForm>
    </Panel>
  );
}

function LeavePanel({ app, session, guarded }: { app: App; session: Session; guarded: Guard }) {
  const password = useRef<HTMLInputElement>(null);
  const section = useScope();
  const row = useScope();
  const say = useFeedback();
  /** The upload to wait for, while the user decides whether to log out with keys not in the backup. */
  const confirming = useSignal<Uploads | undefined>(undefined);
  const deleteAccount = guarded(async () => {
    await session.deleteAccount(textIn(password));
    app.setSession(undefined);
    app.go('signup', 'Your account is deleted, with everything the server held for it.');
  });
  const leave = () =>
    runAction(section, say, 'Logging out…', async () => {
      confirming.value = undefined;
      app.setSession(undefined);
      try {
        await session.logOut();
      } finally {
        // The keys are gone from memory even if the server could not be told; the error still shows.
        app.go('login', 'Logged out. The keys are wiped from this tab.');
      }
    });
  const logOut = () =>
    runAction(row, say, 'Checking your backup…', async () => {
      // Keys not yet in the backup: say so first, and let the upload go on while the user decides.
      const uploads = app.uploads();
      await uploads?.refresh();
      if (uploads === undefined || uploads.unsaved === 0) return leave();
      confirming.value = uploads;
    });
  return (
    <Panel title="Log out or leave" scope={section}>
      <Busy scope={row}>
        <div class="form-end" aria-busy={row.value ? 'true' : undefined}>
          <Button class="secondary" onClick={() => void logOut()}>
            Log out
          </Button>
          <FeedbackRegions say={say} />
        </div>
      </Busy>
      <div>
        {confirming.value !== undefined && (
          <ConfirmLogOut
            uploads={confirming.value}
            leave={() => void leave()}
            stay={() => {
              confirming.value = undefined;
            }}
          />
        )}
      </div>
      <h3>Delete account</h3>
      <p class="aside">This removes the account and every key the server holds for it. It cannot be undone.</p>
      <ActionForm submit="Delete account permanently" progress={DERIVING} action={deleteAccount} class="danger-zone">
        <Field
          label="Password to confirm deletion"
          name="delete-password"
          type="password"
          autocomplete="current-password"
          inputRef={password}
        />
      </ActionForm>
    </Panel>
  );
}

/**
 * Logging out while keys wait for the backup: how many, what happens to them, and the choice. The
 * count follows the upload live (its state is a signal); once every key is in, the warning says so.
 */
function ConfirmLogOut({ uploads, leave, stay }: { uploads: Uploads; leave: () => void; stay: () => void }) {
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  const waiting = uploads.unsaved;
  return (
    // biome-ignore lint/a11y/useSemanticElements: a fieldset would bring its own border and disabling; the group is the same to a reader
    <div
      class={waiting === 0 ? 'confirm settled' : 'confirm'}
      role="group"
      aria-label="Confirm logging out"
      data-testid="logout-warning"
    >
      <div aria-live="polite">
        <p>
          {waiting === 0
            ? 'Every key on this device is in your backup now. You can log out safely.'
            : unsavedText(uploads)}
        </p>
      </div>
      <div class="button-row">
        <Button class="danger" onClick={leave}>
          {waiting === 0 ? 'Log out' : 'Log out anyway'}
        </Button>
        <Button class="secondary" buttonRef={cancel} onClick={stay}>
          Stay logged in
        </Button>
      </div>
    </div>
  );
}

function unsavedText(uploads: Uploads): string {
  const waiting = uploads.unsaved;
  const { state } = uploads;
  const keys = waiting === 1 ? '1 key on this device is' : `${count(waiting)} keys on this device are`;
  const now =
    state.uploading !== undefined
      ? 'They are uploading now.'
      : state.error !== undefined
        ? `They could not be uploaded: ${plainMessage(state.error)}`
        : 'They will upload in a moment.';
  return (
    `${keys} not in your backup yet. ${now} If you log out, they stay sealed in this browser and ` +
    'upload the next time you log in here; if you never use this browser again, they are lost.'
  );
}
