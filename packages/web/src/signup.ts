import type { App } from './app.js';
import { DERIVING, field, form, h, link, panel, requireSame } from './ui.js';

/** Sign-up: OPAQUE registration and a fresh kB made here, in the browser. The server mails a code. */
export function signupScreen(app: App): HTMLElement {
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', value: app.pendingEmail });
  const password = field('Password', {
    name: 'password',
    type: 'password',
    autocomplete: 'new-password',
    hint: 'At least 8 characters. It never leaves this browser: the server gets an OPAQUE record.',
  });
  const confirm = field('Confirm password', { name: 'confirm', type: 'password', autocomplete: 'new-password' });
  return panel(
    'Create an account',
    form('Create account', DERIVING, [email.row, password.row, confirm.row], async () => {
      requireSame(password.input.value, confirm.input.value);
      await app.client.signUp(email.input.value, password.input.value);
      app.pendingEmail = email.input.value;
      app.go('verify', `We sent a code to ${email.input.value}. Enter it to verify your address.`);
    }),
    h('p', { class: 'aside' }, 'Already have an account? ', link('login', 'Log in')),
  );
}
