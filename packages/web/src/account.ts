import { LatchkeyError, type Session } from '@latchkey/client';
import type { App } from './app.js';
import { showGrantedApps } from './oauth-grants.js';
import {
  count,
  DERIVING,
  feedback,
  field,
  form,
  h,
  link,
  panel,
  plainMessage,
  requireSame,
  runAction,
  showError,
  when,
} from './ui.js';
import type { Uploads } from './uploads.js';

/** The logged-in home: account facts, the account key check, sessions, password change, log out, delete. */
export function accountScreen(app: App, session: Session): HTMLElement {
  const guarded = guardSession(app);
  const root = h('div', { class: 'stack' });
  const summary = h('dl', { class: 'facts' });
  const summarySay = feedback();
  const sessions = h('div', { class: 'sessions' }, h('p', {}, 'Loading sessions…'));
  const sessionsSay = feedback();
  const loadSummary = guarded(async () => renderSummary(summary, await session.account()));
  const loadSessions = guarded(async () => {
    const list = await session.listSessions();
    sessions.replaceChildren(sessionsTable(list, (id) => runAction(sessions, sessionsSay, 'Revoking…', revoke(id))));
  });
  const revoke = (sessionId: string) =>
    guarded(async () => {
      await session.revokeSession(sessionId);
      await loadSessions();
    });
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh sessions');
  refresh.addEventListener(
    'click',
    () => void runAction(sessionsPanel, sessionsSay, 'Loading sessions…', loadSessions),
  );
  const sessionsPanel = panel(
    'Sessions',
    h('p', { class: 'aside' }, 'Every place this account is logged in. Revoking one logs it out at once.'),
    sessions,
    h('div', { class: 'form-end' }, refresh, sessionsSay.element),
  );
  const reload = async () => {
    await Promise.all([loadSummary().catch((error) => summarySay.error(error)), loadSessions()]);
  };

  // Issue 9's Preact panel of granted apps; the Preact router re-wires it.
  const grantedApps = h('div', { class: 'stack' });
  showGrantedApps(grantedApps, app, session);
  root.append(
    panel('Your account', summary, summarySay.element),
    keysPanel(app, session, guarded),
    sessionsPanel,
    grantedApps,
    changePasswordPanel(session, guarded, reload),
    leavePanel(app, session, guarded),
  );
  // Load both in the background; a failure shows in the panel that was loading.
  void loadSummary().catch((error) => summarySay.error(error));
  void loadSessions().catch((error) => {
    // Not "Loading…" forever: the list is empty for now, and the reason shows beside Refresh.
    sessions.replaceChildren(h('p', { class: 'aside' }, 'The sessions could not be loaded.'));
    sessionsSay.error(error);
  });
  return root;
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

function renderSummary(list: HTMLElement, info: Awaited<ReturnType<Session['account']>>): void {
  const facts: Array<[string, string]> = [
    ['Email', info.email],
    ['Account ID', info.accountId],
    ['Email verified', info.verified ? 'yes' : 'no'],
    ['Created', when(info.createdAt)],
    ['Password changed', when(info.passwordChangedAt)],
    ['Keys changed', when(info.keysChangedAt)],
  ];
  list.replaceChildren(...facts.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

/**
 * The account key check (a fingerprint of kB) when the keys are in memory; after a reload they are
 * not, so offer to unlock. Users meet kB only as "your account key": what it does, not its name.
 */
function keysPanel(app: App, session: Session, guarded: Guard): HTMLElement {
  if (session.hasKeys) {
    return panel(
      'Your keys',
      h(
        'p',
        { class: 'key-check' },
        h('span', { id: 'key-check-label' }, 'Account key check: '),
        h(
          'code',
          { class: 'fingerprint', 'data-testid': 'kb-fingerprint', 'aria-labelledby': 'key-check-label' },
          session.kBFingerprint,
        ),
      ),
      h(
        'p',
        { class: 'aside' },
        'Your account key encrypts your data in this browser; the server cannot read it. Compare this ' +
          'check on two devices to see that both hold the same key. A password change keeps it; a ' +
          'password reset makes a new one, and then the check changes too.',
      ),
      h(
        'p',
        {},
        link('backup', 'Key backup'),
        ': back up the keys on this device, or restore them on a new one with your recovery key.',
      ),
    );
  }
  const password = field('Password to unlock keys', {
    name: 'unlock-password',
    type: 'password',
    autocomplete: 'current-password',
  });
  return panel(
    'Your keys',
    h('p', { class: 'aside' }, 'This tab was reloaded, so your keys are no longer in memory. Unlock them:'),
    form(
      'Unlock',
      DERIVING,
      [password.row],
      guarded(async () => {
        await session.reauthenticate(password.input.value);
        app.setSession(session);
        app.go('account', 'Keys unlocked.');
      }),
    ),
  );
}

function sessionsTable(
  list: Awaited<ReturnType<Session['listSessions']>>,
  onRevoke: (sessionId: string) => void,
): HTMLElement {
  const rows = list.map((s) => {
    const name = s.deviceName ?? 'Unnamed device';
    const action = s.current
      ? h('span', { class: 'badge' }, 'This session')
      : h(
          'button',
          { type: 'button', class: 'danger small', 'aria-label': `Revoke ${name}, signed in ${when(s.createdAt)}` },
          'Revoke',
        );
    action.addEventListener('click', () => onRevoke(s.sessionId));
    return h(
      'tr',
      { 'data-testid': 'session-row' },
      h('td', {}, name),
      h('td', {}, when(s.createdAt)),
      h('td', {}, when(s.lastUsedAt)),
      h('td', {}, when(s.expiresAt)),
      h('td', {}, action),
    );
  });
  const head = ['Device', 'Signed in', 'Last used', 'Expires', ''].map((title) => h('th', { scope: 'col' }, title));
  return h('table', {}, h('thead', {}, h('tr', {}, ...head)), h('tbody', {}, ...rows));
}

function changePasswordPanel(session: Session, guarded: Guard, reload: () => Promise<void>): HTMLElement {
  const current = field('Current password', { name: 'current', type: 'password', autocomplete: 'current-password' });
  const next = field('New password', { name: 'new', type: 'password', autocomplete: 'new-password' });
  const confirm = field('Confirm new password', { name: 'confirm', type: 'password', autocomplete: 'new-password' });
  return panel(
    'Change password',
    h('p', { class: 'aside' }, 'Your account key stays the same. Every other session is logged out.'),
    form('Change password', DERIVING, [current.row, next.row, confirm.row], (say) =>
      guarded(async () => {
        requireSame(next.input.value, confirm.input.value);
        const { revokedSessions } = await session.changePassword(current.input.value, next.input.value);
        for (const row of [current, next, confirm]) row.input.value = '';
        const ended = revokedSessions === 1 ? '1 other session was' : `${revokedSessions} other sessions were`;
        say.success(`Password changed; your account key stays the same. ${ended} logged out.`);
        await reload();
      })(),
    ),
  );
}

function leavePanel(app: App, session: Session, guarded: Guard): HTMLElement {
  const logOut = h('button', { type: 'button', class: 'secondary' }, 'Log out');
  const logOutSay = feedback();
  const password = field('Password to confirm deletion', {
    name: 'delete-password',
    type: 'password',
    autocomplete: 'current-password',
  });
  const deletion = form('Delete account permanently', DERIVING, [password.row], () =>
    guarded(async () => {
      await session.deleteAccount(password.input.value);
      app.setSession(undefined);
      app.go('signup', 'Your account is deleted, with everything the server held for it.');
    })(),
  );
  deletion.classList.add('danger-zone');
  const confirmArea = h('div', {});
  const logOutRow = h('div', { class: 'form-end' }, logOut, logOutSay.element);
  const section = panel(
    'Log out or leave',
    logOutRow,
    confirmArea,
    h('h3', {}, 'Delete account'),
    h('p', { class: 'aside' }, 'This removes the account and every key the server holds for it. It cannot be undone.'),
    deletion,
  );
  const leave = () =>
    runAction(section, logOutSay, 'Logging out…', async () => {
      confirmArea.replaceChildren();
      app.setSession(undefined);
      try {
        await session.logOut();
      } finally {
        // The keys are gone from memory even if the server could not be told; the error still shows.
        app.go('login', 'Logged out. The keys are wiped from this tab.');
      }
    });
  logOut.addEventListener('click', () => {
    void runAction(logOutRow, logOutSay, 'Checking your backup…', async () => {
      // Keys not yet in the backup: say so first, and let the upload go on while the user decides.
      const uploads = app.uploads();
      await uploads?.refresh();
      if (uploads === undefined || uploads.unsaved === 0) return leave();
      confirmArea.replaceChildren(confirmLogOut(uploads, leave, () => confirmArea.replaceChildren()));
    });
  });
  return section;
}

/**
 * Logging out while keys wait for the backup: how many, what happens to them, and the choice. The
 * count follows the upload live; once every key is in, the warning says so.
 */
function confirmLogOut(uploads: Uploads, leave: () => void, stay: () => void): HTMLElement {
  const text = h('p', {});
  const go = h('button', { type: 'button', class: 'danger' }, 'Log out anyway');
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Stay logged in');
  const element = h(
    'div',
    { class: 'confirm', role: 'group', 'aria-label': 'Confirm logging out', 'data-testid': 'logout-warning' },
    h('div', { 'aria-live': 'polite' }, text),
    h('div', { class: 'button-row' }, go, cancel),
  );
  const unsubscribe = uploads.subscribe(() => {
    if (!element.isConnected && text.textContent !== '') return void unsubscribe();
    const waiting = uploads.unsaved;
    if (waiting === 0) {
      element.classList.add('settled');
      text.textContent = 'Every key on this device is in your backup now. You can log out safely.';
      go.textContent = 'Log out';
      return;
    }
    const keys = waiting === 1 ? '1 key on this device is' : `${count(waiting)} keys on this device are`;
    const now =
      uploads.state.uploading !== undefined
        ? 'They are uploading now.'
        : uploads.state.error !== undefined
          ? `They could not be uploaded: ${plainMessage(uploads.state.error)}`
          : 'They will upload in a moment.';
    text.textContent =
      `${keys} not in your backup yet. ${now} If you log out, they stay sealed in this browser and ` +
      'upload the next time you log in here; if you never use this browser again, they are lost.';
  });
  go.addEventListener('click', () => {
    unsubscribe();
    leave();
  });
  cancel.addEventListener('click', () => {
    unsubscribe();
    stay();
  });
  queueMicrotask(() => cancel.focus());
  return element;
}
