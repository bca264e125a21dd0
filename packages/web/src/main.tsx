import { render } from 'preact';
import { createApp } from './app.js';
import { Page } from './router.js';

const app = createApp();

// Closing the tab with keys not yet in the backup: the browser asks first. The keys stay in this
// browser's keystore and go up at the next log-in here, but a device never used again would keep them.
window.addEventListener('beforeunload', (event) => {
  if ((app.uploads()?.unsaved ?? 0) === 0) return;
  event.preventDefault();
  // Older Chromium asks only when returnValue is set.
  event.returnValue = '';
});

// Links and the back button change the hash themselves.
window.addEventListener('hashchange', () => app.openFromHash());
app.openFromHash();
render(<Page app={app} />, document.querySelector('main') as HTMLElement);
