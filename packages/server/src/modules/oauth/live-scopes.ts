import { BASE_SCOPES } from '@latchkey/core';
import type Provider from 'oidc-provider';
import type { ServerContext } from '../../context.js';

/**
 * The one place that reads oidc-provider's internals: the Set of scopes its configuration holds (it
 * copies the `scopes` it is given), which it reads on every request. Discovery and each client load
 * refill it from the database (keys-relay.ts, clients.ts), so a scope an admin adds with
 * `latchkey oauth scope add` (straight on the database, maybe from another machine) is usable at once,
 * on every node, without a restart.
 *
 * Why not a documented way. oidc-provider's `scopes` is static configuration, and what it does with
 * it cannot be had otherwise: a client's `scope` allow-list is enforced (invalid_scope) only for
 * scopes in that Set, and only those become OpenID scopes of the grant and the tokens. Its documented
 * dynamic mechanism, resource indicators (`features.resourceIndicators.getResourceServerInfo`), makes
 * them a resource server's scopes instead: the app would have to send `resource`, and the tokens would
 * be audience-bound to it, which no Firefox Accounts relier does. A restart per new scope would not
 * reach the other nodes either. So the Set is read here, once per provider, through
 * `lib/helpers/weak_cache.js`; oidc-provider is pinned in the lockfile, {@link liveScopes} throws at
 * start if it ever moves (every oauth test then fails), and oauth-cli.test.ts checks that a scope
 * added to a running server is served at once.
 */
export type ScopeSet = Set<string>;

export async function liveScopes(provider: Provider): Promise<ScopeSet> {
  const { default: instance } = await import('oidc-provider/lib/helpers/weak_cache.js');
  const scopes = (instance(provider) as { configuration?: { scopes?: unknown } } | undefined)?.configuration?.scopes;
  if (!(scopes instanceof Set)) throw new Error('oidc-provider no longer keeps its scopes where expected');
  return scopes as ScopeSet;
}

export async function refreshScopes(ctx: ServerContext, scopes: ScopeSet): Promise<void> {
  setScopes(
    scopes,
    (await ctx.store.oauth.listScopes()).map((row) => row.scope),
  );
}

/** Makes `scopes` hold exactly the base scopes and `registered`, in place. */
export function setScopes(scopes: ScopeSet, registered: readonly string[]): void {
  const wanted = new Set<string>([...BASE_SCOPES, ...registered]);
  for (const scope of scopes) if (!wanted.has(scope)) scopes.delete(scope);
  for (const scope of wanted) scopes.add(scope);
}
