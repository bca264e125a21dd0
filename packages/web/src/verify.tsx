import { useRef } from 'preact/hooks';
import type { App } from './app.js';
import { ActionForm, Button, EmailField, Field, Link, Panel, runAction, textIn, useScope } from './controls.js';
import { FeedbackRegions, useFeedback } from './notices.js';

/** Email verification with the 8-digit code from the sign-up mail; a new code can be requested. */
export function VerifyScreen({ app }: { app: App }) {
  const email = useRef<HTMLInputElement>(null);
  const code = useRef<HTMLInputElement>(null);
  // Asking for a new code waits on the whole panel, the verify form with it.
  const scope = useScope();
  const resendSay = useFeedback();
  const verify = async () => {
    await app.client.verifyEmail(textIn(email), textIn(code));
    app.pendingEmail = textIn(email);
    app.go('login', 'Your email is verified. Log in to continue.');
  };
  const resend = () =>
    runAction(scope, resendSay, 'Sending a new code…', async () => {
      await app.client.resendVerification(textIn(email));
      resendSay.success(`If ${textIn(email)} awaits verification, a new code is on its way.`);
    });
  return (
    <Panel title="Verify your email" scope={scope}>
      <ActionForm submit="Verify" progress="Checking the code…" action={verify}>
        <EmailField app={app} inputRef={email} />
        <Field
          label="Verification code"
          name="code"
          autocomplete="one-time-code"
          inputMode="numeric"
          hint="The 8 digits from the email we sent you."
          inputRef={code}
        />
      </ActionForm>
      <div class="form-end aside">
        <p>
          <Button class="secondary" onClick={() => void resend()}>
            Send a new code
          </Button>{' '}
          <Link route="login">Back to log in</Link>
        </p>
        <FeedbackRegions say={resendSay} />
      </div>
    </Panel>
  );
}
