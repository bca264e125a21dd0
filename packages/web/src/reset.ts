import type { App } from './app.js';
import { DERIVING, field, form, h, link, panel, requireSame } from './ui.js';

/**
 * Password reset in two steps: ask for a code by email, then set a new password with it. The old kB
 * cannot be opened without the old password, so the reset makes a new kB (kA is kept), and every
 * session of the account ends.
 */
export function resetScreen(app: App): HTMLElement {
  const section = panel('Reset your password');
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', value: app.pendingEmail });
  section.append(
    h(
      'p',
      { class: 'aside' },
      'We will email you a code. A reset gives your account a new account key: keys your browsers stored ' +
        'under the old one no longer open, but your backup still opens with its recovery key or passphrase.',
    ),
    form('Send reset code', 'Sending…', [email.row], async () => {
      await app.client.requestReset(email.input.value);
      app.pendingEmail = email.input.value;
      section.replaceWith(completeStep(app, email.input.value));
    }),
    h('p', { class: 'aside' }, link('login', 'Back to log in')),
  );
  return section;
}

function completeStep(app: App, email: string): HTMLElement {
  const code = field('Reset code', {
    name: 'code',
    autocomplete: 'one-time-code',
    inputmode: 'numeric',
    hint: `The 8 digits we sent to ${email} (if it has an account).`,
  });
  const password = field('New password', { name: 'new', type: 'password', autocomplete: 'new-password' });
  const confirm = field('Confirm new password', { name: 'confirm', type: 'password', autocomplete: 'new-password' });
  return panel(
    'Choose a new password',
    form('Reset password', DERIVING, [code.row, password.row, confirm.row], async () => {
      requireSame(password.input.value, confirm.input.value);
      await app.client.completeReset(email, code.input.value, password.input.value);
      app.setSession(undefined);
      app.go('login', 'Your password is reset and your account key is new. Log in with the new password.');
    }),
    h('p', { class: 'aside' }, link('reset', 'Start again')),
  );
}
