import type { App } from './app.js';
import { field, form, h, link, panel, runAction, showStatus } from './ui.js';

/** Email verification with the 8-digit code from the sign-up mail; a new code can be requested. */
export function verifyScreen(app: App): HTMLElement {
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', value: app.pendingEmail });
  const code = field('Verification code', {
    name: 'code',
    autocomplete: 'one-time-code',
    inputmode: 'numeric',
    hint: 'The 8 digits from the email we sent you.',
  });
  const resend = h('button', { type: 'button', class: 'secondary' }, 'Send a new code');
  const section = panel(
    'Verify your email',
    form('Verify', 'Checking the code…', [email.row, code.row], async () => {
      await app.client.verifyEmail(email.input.value, code.input.value);
      app.pendingEmail = email.input.value;
      app.go('login', 'Your email is verified. Log in to continue.');
    }),
    h('p', { class: 'aside' }, resend, ' ', link('login', 'Back to log in')),
  );
  resend.addEventListener('click', () => {
    void runAction(section, 'Sending a new code…', async () => {
      await app.client.resendVerification(email.input.value);
      showStatus(`If ${email.input.value} awaits verification, a new code is on its way.`);
    });
  });
  return section;
}
