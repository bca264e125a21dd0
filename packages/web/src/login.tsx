import { useRef } from 'preact/hooks';
import type { App } from './app.js';
import { ActionForm, EmailField, Field, Link, Panel, textIn } from './controls.js';
import { DERIVING } from './format.js';

/** Log-in: OPAQUE; a wrong password is caught in this browser before the third message is sent. */
export function LoginScreen({ app }: { app: App }) {
  const email = useRef<HTMLInputElement>(null);
  const password = useRef<HTMLInputElement>(null);
  const device = useRef<HTMLInputElement>(null);
  const logIn = async () => {
    const name = textIn(device).trim() || defaultDeviceName();
    // This browser's device token for the email (from its last login here) passes the limits that
    // strangers guessing at the account can fill; the login hands back the next one.
    const tokenKey = `latchkey.deviceToken:${textIn(email).trim().toLowerCase()}`;
    const deviceToken = localStorage.getItem(tokenKey) ?? undefined;
    const session = await app.client.logIn(textIn(email), textIn(password), {
      deviceName: name,
      ...(deviceToken === undefined ? {} : { deviceToken }),
    });
    if (session.state.deviceToken !== undefined) localStorage.setItem(tokenKey, session.state.deviceToken);
    // The next log-in in this browser offers the same name.
    localStorage.setItem(DEVICE_NAME_KEY, name);
    app.pendingEmail = '';
    app.setSession(session);
    app.go('account');
  };
  return (
    <Panel title="Log in">
      <ActionForm submit="Log in" progress={DERIVING} action={logIn}>
        <EmailField app={app} inputRef={email} />
        <Field label="Password" name="password" type="password" autocomplete="current-password" inputRef={password} />
        <Field
          label="Name of this device"
          name="device-name"
          autocomplete="off"
          defaultValue={localStorage.getItem(DEVICE_NAME_KEY) ?? defaultDeviceName()}
          hint="Shown in your list of sessions, so you can tell this device from your others."
          required={false}
          maxLength={DEVICE_NAME_MAX}
          inputRef={device}
        />
      </ActionForm>
      <p class="aside">
        <Link route="signup">Create an account</Link>
        {' · '}
        <Link route="reset">Forgot your password?</Link>
        {' · '}
        <Link route="verify">Verify an email</Link>
      </p>
    </Panel>
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
