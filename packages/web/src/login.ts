import type { App } from './app.js';
import { DERIVING, field, form, h, link, panel } from './ui.js';

/** Log-in: OPAQUE; a wrong password is caught in this browser before the third message is sent. */
export function loginScreen(app: App): HTMLElement {
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', value: app.pendingEmail });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password' });
  const device = field('Name of this device', {
    name: 'device-name',
    autocomplete: 'off',
    value: localStorage.getItem(DEVICE_NAME_KEY) ?? defaultDeviceName(),
    hint: 'Shown in your list of sessions, so you can tell this device from your others.',
  });
  device.input.required = false;
  device.input.maxLength = DEVICE_NAME_MAX;
  return panel(
    'Log in',
    form('Log in', DERIVING, [email.row, password.row, device.row], async () => {
      const name = device.input.value.trim() || defaultDeviceName();
      // This browser's device token for the email (from its last login here) passes the limits that
      // strangers guessing at the account can fill; the login hands back the next one.
      const tokenKey = `latchkey.deviceToken:${email.input.value.trim().toLowerCase()}`;
      const deviceToken = localStorage.getItem(tokenKey) ?? undefined;
      const session = await app.client.logIn(email.input.value, password.input.value, {
        deviceName: name,
        ...(deviceToken === undefined ? {} : { deviceToken }),
      });
      if (session.state.deviceToken !== undefined) localStorage.setItem(tokenKey, session.state.deviceToken);
      // The next log-in in this browser offers the same name.
      localStorage.setItem(DEVICE_NAME_KEY, name);
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

/** Where this browser remembers the name the user gave it (not a secret: the sessions list shows it). */
const DEVICE_NAME_KEY = 'latchkey.deviceName';
/** The server's limit on a session's device name. */
const DEVICE_NAME_MAX = 100;

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

/** The name offered until the user gives one: the browser's own description of itself. */
function defaultDeviceName(): string {
  const pick = (table: Array<[RegExp, string]>, fallback: string) =>
    table.find(([pattern]) => pattern.test(navigator.userAgent))?.[1] ?? fallback;
  return `${pick(BROWSERS, 'Browser')} on ${pick(SYSTEMS, 'an unknown system')}`;
}
