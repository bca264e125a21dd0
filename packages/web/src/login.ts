import type { App } from './app.js';
import { DERIVING, field, form, h, link, panel } from './ui.js';

/** Log-in: OPAQUE; a wrong password is caught in this browser before the third message is sent. */
export function loginScreen(app: App): HTMLElement {
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', value: app.pendingEmail });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password' });
  return panel(
    'Log in',
    form('Log in', DERIVING, [email.row, password.row], async () => {
      // This browser's device token for the email (from its last login here) passes the limits that
      // strangers guessing at the account can fill; the login hands back the next one.
      const tokenKey = `latchkey.deviceToken:${email.input.value.trim().toLowerCase()}`;
      const deviceToken = localStorage.getItem(tokenKey) ?? undefined;
      const session = await app.client.logIn(email.input.value, password.input.value, {
        deviceName: deviceName(),
        ...(deviceToken === undefined ? {} : { deviceToken }),
      });
      if (session.state.deviceToken !== undefined) localStorage.setItem(tokenKey, session.state.deviceToken);
      app.pendingEmail = '';
      app.setSession(session);
      app.go('account');
    }),
    h(
      'p',
      { class: 'aside' },
      link('signup', 'Create an account'),
      ' · ',
      link('reset', 'Forgot your password?'),
      ' · ',
      link('verify', 'Verify an email'),
    ),
  );
}

const BROWSERS: Array<[RegExp, string]> = [
  [/Firefox\//, 'Firefox'],
  [/Edg\//, 'Edge'],
  [/Chrome\//, 'Chrome'],
  [/Safari\//, 'Safari'],
];
const SYSTEMS: Array<[RegExp, string]> = [
  [/Windows/, 'Windows'],
  [/Android/, 'Android'],
  [/iPhone|iPad/, 'iOS'],
  [/Mac OS X/, 'macOS'],
  [/Linux/, 'Linux'],
];

/** A name the sessions list can show, from the browser's own description of itself. */
function deviceName(): string {
  const pick = (table: Array<[RegExp, string]>, fallback: string) =>
    table.find(([pattern]) => pattern.test(navigator.userAgent))?.[1] ?? fallback;
  return `${pick(BROWSERS, 'Browser')} on ${pick(SYSTEMS, 'an unknown system')}`;
}
