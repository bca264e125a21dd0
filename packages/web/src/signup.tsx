import { useRef } from 'preact/hooks';
import type { App } from './app.js';
import { ActionForm, EmailField, Field, Link, Panel, textIn } from './controls.js';
import { DERIVING, requireSame } from './format.js';

/** Sign-up: OPAQUE registration and a fresh kB made here, in the browser. The server mails a code. */
export function SignupScreen({ app }: { app: App }) {
  const email = useRef<HTMLInputElement>(null);
  const password = useRef<HTMLInputElement>(null);
  const confirm = useRef<HTMLInputElement>(null);
  const signUp = async () => {
    requireSame(textIn(password), textIn(confirm));
    await app.client.signUp(textIn(email), textIn(password));
    app.pendingEmail = textIn(email);
    app.go('verify', `We sent a code to ${textIn(email)}. Enter it to verify your address.`);
  };
  return (
    <Panel title="Create an account">
      <ActionForm submit="Create account" progress={DERIVING} action={signUp}>
        <EmailField app={app} inputRef={email} />
        <Field
          label="Password"
          name="password"
          type="password"
          autocomplete="new-password"
          hint="At least 8 characters. It never leaves this browser: the server gets an OPAQUE record."
          inputRef={password}
        />
        <Field label="Confirm password" name="confirm" type="password" autocomplete="new-password" inputRef={confirm} />
      </ActionForm>
      <p class="aside">
        Already have an account? <Link route="login">Log in</Link>
      </p>
    </Panel>
  );
}
