import { LatchkeyError, type Session } from '@latchkey/client';
import type { App } from './app.js';
import { DERIVING, field, form, h, link, panel, requireSame, runAction, showError, when } from './ui.js';

/** The logged-in home: account facts, kB's fingerprint, sessions, password change, log out, delete. */
export function accountScreen(app: App, session: Session): HTMLElement {
  const guarded = guardSession(app);
  const root = h('div', { class: 'stack' });
  const summary = h('dl', { class: 'facts' });
  const sessions = h('div', { class: 'sessions' }, h('p', {}, 'Loading sessions…'));
  const loadSummary = guarded(async () => renderSummary(summary, await session.account()));
  const loadSessions = guarded(async () => {
    const list = await session.listSessions();
    sessions.replaceChildren(sessionsTable(list, (id) => runAction(sessions, 'Revoking…', revoke(id))));
  });
  const revoke = (sessionId: string) =>
    guarded(async () => {
      await session.revokeSession(sessionId);
      await loadSessions();
    });
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh sessions');
  refresh.addEventListener('click', () => void runAction(sessions, 'Loading sessions…', loadSessions));

  root.append(
    panel('Your account', summary),
    keysPanel(app, session, guarded),
    panel(
      'Sessions',
      h('p', { class: 'aside' }, 'Every place this account is logged in. Revoking one logs it out at once.'),
      sessions,
      refresh,
    ),
    changePasswordPanel(app, session, guarded),
    leavePanel(app, session, guarded),
  );
  // Load both in the background; a failure shows in the alert region like any other.
  void Promise.all([loadSummary(), loadSessions()]).catch(showError);
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

/** kB's fingerprint when the keys are in memory; after a reload they are not, so offer to unlock. */
function keysPanel(app: App, session: Session, guarded: Guard): HTMLElement {
  if (session.hasKeys) {
    return panel(
      'Your keys',
      h(
        'p',
        {},
        'kB fingerprint: ',
        h('code', { class: 'fingerprint', 'data-testid': 'kb-fingerprint' }, session.kBFingerprint),
      ),
      h(
        'p',
        { class: 'aside' },
        'kB was made in a browser and only your password opens it; the server holds it encrypted. ' +
          'A password change keeps it; a reset replaces it.',
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

function changePasswordPanel(app: App, session: Session, guarded: Guard): HTMLElement {
  const current = field('Current password', { name: 'current', type: 'password', autocomplete: 'current-password' });
  const next = field('New password', { name: 'new', type: 'password', autocomplete: 'new-password' });
  const confirm = field('Confirm new password', { name: 'confirm', type: 'password', autocomplete: 'new-password' });
  return panel(
    'Change password',
    h('p', { class: 'aside' }, 'Your keys stay the same. Every other session is logged out.'),
    form(
      'Change password',
      DERIVING,
      [current.row, next.row, confirm.row],
      guarded(async () => {
        requireSame(next.input.value, confirm.input.value);
        const { revokedSessions } = await session.changePassword(current.input.value, next.input.value);
        app.setSession(session);
        const ended = revokedSessions === 1 ? '1 other session was' : `${revokedSessions} other sessions were`;
        app.go('account', `Password changed; kB kept. ${ended} logged out.`);
      }),
    ),
  );
}

function leavePanel(app: App, session: Session, guarded: Guard): HTMLElement {
  const logOut = h('button', { type: 'button', class: 'secondary' }, 'Log out');
  const password = field('Password to confirm deletion', {
    name: 'delete-password',
    type: 'password',
    autocomplete: 'current-password',
  });
  const deletion = form(
    'Delete account permanently',
    DERIVING,
    [password.row],
    guarded(async () => {
      await session.deleteAccount(password.input.value);
      app.setSession(undefined);
      app.go('signup', 'Your account is deleted, with everything the server held for it.');
    }),
  );
  deletion.classList.add('danger-zone');
  const section = panel(
    'Log out or leave',
    h('p', {}, logOut),
    h('h3', {}, 'Delete account'),
    h('p', { class: 'aside' }, 'This removes the account and every key the server holds for it. It cannot be undone.'),
    deletion,
  );
  logOut.addEventListener('click', () => {
    void runAction(section, 'Logging out…', async () => {
      app.setSession(undefined);
      try {
        await session.logOut();
      } finally {
        // The keys are gone from memory even if the server could not be told; the error still shows.
        app.go('login', 'Logged out. The keys are wiped from this tab.');
      }
    });
  });
  return section;
}
