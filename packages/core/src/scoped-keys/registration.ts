import { appKeyScope, type ScopedKeyClass } from './derive.js';

/**
 * How an admin registered a key-bearing scope (`latchkey oauth scope add`): an app-specific scope
 * belongs to one client; a service scope names the clients that may be granted it. FxA's rule is the
 * same in spirit (reference §3.5): a key-bearing scope must be registered and in the client's allowed
 * scopes; here the app kind makes "only its own app" impossible to misconfigure.
 */
export type KeyScopeRegistration =
  | { kind: 'app'; identifier: string; keyClass: ScopedKeyClass; clientId: string }
  | { kind: 'service'; identifier: string; keyClass: ScopedKeyClass; allowedClientIds: readonly string[] };

/** The registration of `clientId`'s own app-specific scope. */
export function appKeyScopeRegistration(clientId: string, keyClass: ScopedKeyClass = 'kB'): KeyScopeRegistration {
  return { kind: 'app', identifier: appKeyScope(clientId), keyClass, clientId };
}

/**
 * Whether `clientId` may ask for the keys of this scope: its own app scope (whose identifier must be
 * the one {@link appKeyScope} gives it, so a registration cannot hand one app's key to another), or a
 * service scope that lists it.
 */
export function mayRequestKeyScope(registration: KeyScopeRegistration, clientId: string): boolean {
  if (registration.kind === 'app') {
    return registration.clientId === clientId && registration.identifier === appKeyScope(clientId);
  }
  return registration.allowedClientIds.includes(clientId);
}
