import { BASE_SCOPES, LatchkeyError } from '@latchkey/core';
import type { Store } from '../../store/store.js';

/**
 * The admin's registrations (issue 9), run straight on the database by `latchkey oauth client|scope`
 * like the other admin commands: a running server sees them at its next request.
 */

export interface ClientInfo {
  id: string;
  name: string;
  redirectUris: string[];
}

export interface ScopeInfo {
  scope: string;
  keyClass: 'kA' | 'kB' | null;
  clients: string[];
}

/** A redirect URI must be absolute, without a fragment (RFC 6749 §3.1.2); it is matched exactly. */
function checkRedirectUri(uri: string): void {
  if (!URL.canParse(uri) || uri.includes('#')) {
    throw new LatchkeyError('LK_USAGE', `${JSON.stringify(uri)} is not an absolute redirect URI without a fragment.`);
  }
}

export async function addOauthClient(store: Store, client: ClientInfo, now: number): Promise<void> {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(client.id)) {
    throw new LatchkeyError('LK_USAGE', 'A client id is 1 to 64 letters, digits, dots, dashes or underscores.');
  }
  if (client.redirectUris.length === 0) throw new LatchkeyError('LK_USAGE', 'A client needs a redirect URI.');
  for (const uri of client.redirectUris) checkRedirectUri(uri);
  const added = await store.oauth.insertClient({
    id: client.id,
    name: client.name,
    redirect_uris: JSON.stringify(client.redirectUris),
    created_at: now,
  });
  if (!added) throw new LatchkeyError('LK_OAUTH_CLIENT_EXISTS');
}

export async function listOauthClients(store: Store): Promise<ClientInfo[]> {
  return (await store.oauth.listClients()).map((row) => ({
    id: row.id,
    name: row.name,
    redirectUris: JSON.parse(row.redirect_uris) as string[],
  }));
}

/** Removes the client; its grants and tokens stop working at once (oidc-provider finds no client). */
export async function removeOauthClient(store: Store, id: string): Promise<void> {
  if (!(await store.oauth.deleteClient(id))) throw new LatchkeyError('LK_OAUTH_CLIENT_NOT_FOUND');
}

/** A scope is a URL (Firefox Accounts' key scopes are) or a short name; it cannot hold a space. */
export async function addOauthScope(store: Store, scope: ScopeInfo, now: number): Promise<void> {
  if (
    !/^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/.test(scope.scope) ||
    (BASE_SCOPES as readonly string[]).includes(scope.scope)
  ) {
    throw new LatchkeyError(
      'LK_OAUTH_SCOPE_INVALID',
      `${JSON.stringify(scope.scope)} cannot be registered as a scope.`,
    );
  }
  for (const id of scope.clients) {
    if ((await store.oauth.findClient(id)) === undefined) {
      throw new LatchkeyError('LK_OAUTH_CLIENT_NOT_FOUND', `No OAuth client ${id}.`);
    }
  }
  await store.oauth.putScope({
    scope: scope.scope,
    key_class: scope.keyClass,
    clients: JSON.stringify(scope.clients),
    created_at: now,
  });
}

export async function listOauthScopes(store: Store): Promise<ScopeInfo[]> {
  return (await store.oauth.listScopes()).map((row) => ({
    scope: row.scope,
    keyClass: row.key_class,
    clients: JSON.parse(row.clients) as string[],
  }));
}
