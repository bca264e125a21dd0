import { appKeyScope } from './derive.js';

/** What an admin registers for a scope (`latchkey oauth scope add`): the clients that may ask for it. */
export interface ScopeRegistration {
  scope: string;
  clients: readonly string[];
}

/** Scopes every client may ask for; the registered ones are granted per client by the admin. */
export const BASE_SCOPES = ['openid', 'offline_access'] as const;

/** The prefix of app-specific scopes ({@link appKeyScope}). */
const APP_KEY_PREFIX = 'app_key:';

/**
 * Whether `clientId` may ask for a registered scope. FxA's rule (reference §3.5): the scope must be
 * registered and among the client's allowed scopes, here the clients its registration lists. And an
 * app-specific scope (`app_key:<client>`) only ever to its own client, whatever the registration lists,
 * so no registration (a slip or a hostile admin command) can hand one app's key to another.
 */
export function mayRequestScope(registration: ScopeRegistration, clientId: string): boolean {
  if (!registration.clients.includes(clientId)) return false;
  return !registration.scope.startsWith(APP_KEY_PREFIX) || registration.scope === appKeyScope(clientId);
}

/** The scopes `clientId` may ask for: the base ones and every registered scope {@link mayRequestScope} allows. */
export function scopesAllowedFor(registrations: readonly ScopeRegistration[], clientId: string): string[] {
  const registered = registrations.filter((registration) => mayRequestScope(registration, clientId));
  return [...BASE_SCOPES, ...registered.map((registration) => registration.scope)];
}
