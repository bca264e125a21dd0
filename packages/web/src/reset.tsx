import { useSignal } from '@preact/signals';
import { useRef } from 'preact/hooks';
import type { App } from './app.js';
import { ActionForm, EmailField, Field, Link, Panel, textIn } from './controls.js';
import { DERIVING, requireSame } from './format.js';

/**
 * Password reset in two steps: ask for a code by email, then set a new password with it. The old kB
 * cannot be opened without the old password, so the reset makes a new kB (kA is kept), and every
 * session of the account ends.
 */
export function ResetScreen({ app }: { app: App }) {
  const codeSentTo = useSignal<string | undefined>(undefined);
  const email = useRef<HTMLInputElement>(null);
  if (codeSentTo.value !== undefined) return <CompleteStep app={app} email={codeSentTo.value} />;
  const requestReset = async () => {
    await app.client.requestReset(textIn(email));
    app.pendingEmail = textIn(email);
    codeSentTo.value = textIn(email);
  };
  return (
    <Panel title="Reset your password">
      <p class="aside">
        We will email you a code. A reset gives your account a new account key: keys your browsers stored under the old
        one no longer open, but your backup still opens with its recovery key or passphrase.
      </p>
      <ActionForm submit="Send reset code" progress="Sending…" action={requestReset}>
        <EmailField app={app} inputRef={email} />
      </ActionForm>
      <p class="aside">
        <Link route="login">Back to log in</Link>
      </p>
    </Panel>
  );
}

function CompleteStep({ app, email }: { app: App; email: string }) {
  const code = useRef<HTMLInputElement>(null);
  const password = useRef<HTMLInputElement>(null);
  const confirm = useRef<HTMLInputElement>(null);
  const completeReset = async () => {
    requireSame(textIn(password), textIn(confirm));
    await app.client.completeReset(email, textIn(code), textIn(password));
    app.setSession(undefined);
    app.go('login', 'Your password is reset and your account key is new. Log in with the new password.');
  };
  return (
    <Panel title="Choose a new password">
      <ActionForm submit="Reset password" progress={DERIVING} action={completeReset}>
        <Field
          label="Reset code"
          name="code"
          autocomplete="one-time-code"
          inputMode="numeric"
          hint={`The 8 digits we sent to ${email} (if it has an account).`}
          inputRef={code}
        />
        <Field label="New password" name="new" type="password" autocomplete="new-password" inputRef={password} />
        <Field
          label="Confirm new password"
          name="confirm"
          type="password"
          autocomplete="new-password"
          inputRef={confirm}
        />
      </ActionForm>
      <p class="aside">
        <Link route="reset">Start again</Link>
      </p>
    </Panel>
  );
}
