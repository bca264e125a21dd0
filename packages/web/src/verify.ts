import type { App } from './app.js';
import { feedback, field, form, h, link, panel, runAction } from './ui.js';

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
  const resendSay = feedback();
  const section = panel(
    'Verify your email',
    form('Verify', 'Checking the code…', [email.row, code.row], async () => {
      await app.client.verifyEmail(email.input.value, code.input.value);
      app.pendingEmail = email.input.value;
      app.go('login', 'Your email is verified. Log in to continue.');
    }),
    h('div', { class: 'form-end aside' }, h('p', {}, resend, ' ', link('login', 'Back to log in')), resendSay.element),
  );
  resend.addEventListener('click', () => {
    void runAction(section, resendSay, 'Sending a new code…', async () => {
      await app.client.resendVerification(email.input.value);
      resendSay.success(`If ${email.input.value} awaits verification, a new code is on its way.`);
    });
  });
  return section;
}
