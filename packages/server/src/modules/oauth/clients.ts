import { type ScopeRegistration, scopesAllowedFor } from '@latchkey/core';
import type { OauthStore } from '../../store/oauth-store.js';
import type { OauthScopeRow } from '../../store/schema.js';

/** A scope row as core's rule reads it. */
export function scopeRegistration(row: OauthScopeRow): ScopeRegistration {
  return { scope: row.scope, clients: JSON.parse(row.clients) as string[] };
}

/** The scopes a client may ask for, by core's rule over the registered scope rows. */
export function scopesAllowedByRows(rows: readonly OauthScopeRow[], clientId: string): string[] {
  return scopesAllowedFor(rows.map(scopeRegistration), clientId);
}

/**
 * oidc-provider's metadata of an admin-registered client: public (no secret, so PKCE S256 is required),
 * authorization code and refresh token only, ID tokens signed ES256 (our only signing key), and a
 * `scope` allow-list that oidc-provider enforces with invalid_scope.
 */
export async function clientMetadata(
  store: OauthStore,
  id: string,
  onScopes: (registered: string[]) => void,
): Promise<Record<string, unknown> | undefined> {
  const row = await store.findClient(id);
  if (row === undefined) return undefined;
  const scopes = await store.listScopes();
  onScopes(scopes.map((scope) => scope.scope));
  return {
    client_id: row.id,
    client_name: row.name,
    redirect_uris: JSON.parse(row.redirect_uris) as string[],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: 'none',
    id_token_signed_response_alg: 'ES256',
    scope: scopesAllowedByRows(scopes, row.id).join(' '),
  };
}
