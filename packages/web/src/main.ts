import { accountScreen } from './account.js';
import { type App, createApp, type Route } from './app.js';
import { backupScreen } from './backup.js';
import { loginScreen } from './login.js';
import { consentUid, leavePreactScreen, showConsentScreen } from './oauth-consent.js';
import { resetScreen } from './reset.js';
import { signupScreen } from './signup.js';
import { clearMessages, showStatus } from './ui.js';
import { verifyScreen } from './verify.js';

const ROUTES: readonly Route[] = ['signup', 'verify', 'login', 'account', 'backup', 'reset'];
/** The screens that need a session; without one they show the log-in. */
const SIGNED_IN: readonly Route[] = ['account', 'backup'];

/** The route in the URL hash; the account and backup screens need a session, the others do not want one. */
function currentRoute(app: App): Route {
  const name = location.hash.replace(/^#\/?/, '');
  const route = ROUTES.find((r) => r === name) ?? (app.session === undefined ? 'login' : 'account');
  if (SIGNED_IN.includes(route) && app.session === undefined) return 'login';
  return route;
}

function screenFor(app: App, route: Route): HTMLElement {
  switch (route) {
    case 'signup':
      return signupScreen(app);
    case 'verify':
      return verifyScreen(app);
    case 'reset':
      return resetScreen(app);
    case 'account':
      if (app.session !== undefined) return accountScreen(app, app.session);
      return loginScreen(app);
    case 'backup':
      if (app.session !== undefined) return backupScreen(app, app.session);
      return loginScreen(app);
    case 'login':
      return loginScreen(app);
  }
}

function render(app: App, notice?: string): void {
  const screen = document.getElementById('screen') as HTMLElement;
  // Issue 9's consent page, a Preact screen: the Preact router takes it over.
  leavePreactScreen(screen);
  const uid = consentUid(location.hash);
  if (uid !== undefined) {
    showConsentScreen(screen, app, uid);
    return;
  }
  const route = currentRoute(app);
  clearMessages();
  screen.replaceChildren(screenFor(app, route));
  screen.dataset.route = route;
  document.title = `Latchkey · ${route}`;
  // A new screen opens at its top, where its notice is.
  window.scrollTo(0, 0);
  if (notice !== undefined) showStatus(notice);
  if (location.hash !== `#/${route}`) history.replaceState(null, '', `#/${route}`);
  // On the short form screens, focus the first field still to fill so keyboard users can type at once.
  if (!SIGNED_IN.includes(route)) [...screen.querySelectorAll('input')].find((input) => input.value === '')?.focus();
}

// Screens change at once (pushState fires no hashchange), so a message shown right after `go` stays.
const app = createApp((route, notice) => {
  if (location.hash !== `#/${route}`) history.pushState(null, '', `#/${route}`);
  render(app, notice);
});

// Closing the tab with keys not yet in the backup: the browser asks first. The keys stay in this
// browser's keystore and go up at the next log-in here, but a device never used again would keep them.
window.addEventListener('beforeunload', (event) => {
  if ((app.uploads()?.unsaved ?? 0) === 0) return;
  event.preventDefault();
  // Older Chromium asks only when returnValue is set.
  event.returnValue = '';
});

// Links and the back button change the hash themselves.
window.addEventListener('hashchange', () => render(app));
render(app);
