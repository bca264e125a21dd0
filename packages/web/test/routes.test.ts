import { LatchkeyClient } from '@latchkey/client';
import type { AccountId } from '@latchkey/core';
import { describe, expect, it } from 'vitest';
import { screenFor, titleOf, urlOf } from '../src/routes.js';

/**
 * The web app's URLs, as the hand-made router had them before the Preact one: every screen keeps its
 * `#/name`, the signed-in screens show the log-in without a session, and the consent page carries its
 * uid. A session here is a real SDK session resumed from its state (no request is made).
 */
const session = new LatchkeyClient({ serverUrl: 'http://127.0.0.1:9' }).resume({
  email: 'routes@example.com',
  accountId: 'acc' as AccountId,
  sessionId: 'session',
  token: 'token',
  expiresAt: Date.now() + 60_000,
  keysChangedAt: 0,
});

describe('the web app routes', () => {
  it('opens each screen at its own URL, and the signed-in ones only with a session', () => {
    for (const route of ['signup', 'verify', 'login', 'reset'] as const) {
      expect(screenFor(`#/${route}`, undefined)).toEqual({ route });
      expect(screenFor(`#/${route}`, session)).toEqual({ route });
    }
    for (const route of ['account', 'backup'] as const) {
      expect(screenFor(`#/${route}`, session)).toEqual({ route, session });
      expect(screenFor(`#/${route}`, undefined)).toEqual({ route: 'login' });
    }
  });

  it('sends an unknown or empty hash to the account when signed in, else to the log-in', () => {
    for (const hash of ['', '#', '#/', '#/nowhere', '#/account/extra']) {
      expect(screenFor(hash, session)).toEqual({ route: 'account', session });
      expect(screenFor(hash, undefined)).toEqual({ route: 'login' });
    }
  });

  it('opens the consent page with its uid, signed in or not, and names it back the same way', () => {
    const screen = screenFor('#/oauth/consent/Zx-9_aB', undefined);
    expect(screen).toEqual({ route: 'oauth/consent', uid: 'Zx-9_aB' });
    expect(screenFor('#/oauth/consent/Zx-9_aB', session)).toEqual(screen);
    expect(urlOf(screen)).toBe('#/oauth/consent/Zx-9_aB');
    expect(titleOf(screen)).toBe('Latchkey · authorize an app');
    // Not a consent URL: no uid, or more after it.
    expect(screenFor('#/oauth/consent/', undefined)).toEqual({ route: 'login' });
    expect(screenFor('#/oauth/consent/a/b', undefined)).toEqual({ route: 'login' });
  });

  it('names each screen by the URL it was opened at', () => {
    expect(urlOf({ route: 'backup', session })).toBe('#/backup');
    expect(urlOf({ route: 'login' })).toBe('#/login');
    expect(titleOf({ route: 'login' })).toBe('Latchkey · login');
  });
});
