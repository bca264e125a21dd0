import type { Store } from '@latchkey/server';
import { type Command, type CommandContext, columns, usageError } from '../command.js';
import { resumeSession, SERVER } from './account.js';

/**
 * `latchkey oauth …` (issue 9). Clients and scopes are the admin's: these commands work straight on the
 * server's database (as `serve` does, same LATCHKEY_DB and flag), so a running server sees them at its
 * next request. `oauth grants` is the user's, through the API with their session.
 */
const DB = {
  db: { type: 'string', value: 'URL', description: "the server database (default: $LATCHKEY_DB, or serve's default)" },
} as const;

async function withStore<T>(
  ctx: CommandContext,
  work: (store: Store, server: typeof import('@latchkey/server')) => Promise<T>,
) {
  const server = await import('@latchkey/server');
  const db = ctx.args.string('db');
  const config = server.loadConfig({ ...ctx.env, ...(db === undefined ? {} : { LATCHKEY_DB: db }) });
  const store = await server.openStore(server.connect(config.databaseUrl));
  try {
    return await work(store, server);
  } finally {
    await store.close();
  }
}

function onePositional(ctx: CommandContext, what: string): string {
  const value = ctx.args.positionals[0];
  if (value === undefined || value === '') throw usageError(`name the ${what}`);
  return value;
}

const list = (text: string | undefined) =>
  (text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

const clientAdd: Command = {
  name: 'oauth client add',
  summary: 'Register an app (a public client: PKCE S256, redirect URIs matched exactly)',
  positionals: { usage: 'ID', max: 1 },
  options: {
    ...DB,
    name: { type: 'string', value: 'NAME', description: 'the name the consent page shows (default: the id)' },
    'redirect-uri': { type: 'string', value: 'URIS', description: 'its redirect URIs, comma-separated (required)' },
  },
  async run(ctx) {
    const id = onePositional(ctx, 'client id');
    const redirectUris = list(ctx.args.string('redirect-uri'));
    const name = ctx.args.string('name') ?? id;
    await withStore(ctx, (store, server) => server.addOauthClient(store, { id, name, redirectUris }, Date.now()));
    ctx.out.result({ id, name, redirectUris }, `Client ${id} (${name}) registered.`);
  },
};

const clientList: Command = {
  name: 'oauth client list',
  summary: 'List the registered apps',
  options: { ...DB },
  async run(ctx) {
    const clients = await withStore(ctx, (store, server) => server.listOauthClients(store));
    const text =
      clients.length === 0
        ? 'No clients.'
        : columns(clients.map((c) => [c.id, `${c.name}  ${c.redirectUris.join(' ')}`])).join('\n');
    ctx.out.result({ clients }, text);
  },
};

const clientRemove: Command = {
  name: 'oauth client remove',
  summary: 'Remove an app: its tokens stop working at once',
  positionals: { usage: 'ID', max: 1 },
  options: { ...DB },
  async run(ctx) {
    const id = onePositional(ctx, 'client id');
    await withStore(ctx, (store, server) => server.removeOauthClient(store, id));
    ctx.out.result({ removed: id }, `Client ${id} removed.`);
  },
};

const scopeAdd: Command = {
  name: 'oauth scope add',
  summary: 'Register a scope: whether it carries a key (of class kA or kB) and which apps may ask for it',
  positionals: { usage: 'SCOPE', max: 1 },
  options: {
    ...DB,
    keys: { type: 'string', value: 'kA|kB', description: 'the scope carries a key of this class (default: none)' },
    clients: { type: 'string', value: 'IDS', description: 'the client ids that may ask for it, comma-separated' },
  },
  details:
    'kB-class keys derive from kB, which the server never sees, and rotate with a password reset; kA-class\n' +
    'keys survive a reset. Running it again for a scope replaces its registration.',
  async run(ctx) {
    const scope = onePositional(ctx, 'scope');
    const keys = ctx.args.string('keys');
    if (keys !== undefined && keys !== 'kA' && keys !== 'kB') throw usageError('--keys is kA or kB');
    const keyClass = keys ?? null;
    const clients = list(ctx.args.string('clients'));
    await withStore(ctx, (store, server) => server.addOauthScope(store, { scope, keyClass, clients }, Date.now()));
    ctx.out.result({ scope, keyClass, clients }, `Scope ${scope} registered${keyClass ? ` (${keyClass} keys)` : ''}.`);
  },
};

const scopeList: Command = {
  name: 'oauth scope list',
  summary: 'List the registered scopes, their key class and their apps',
  options: { ...DB },
  async run(ctx) {
    const scopes = await withStore(ctx, (store, server) => server.listOauthScopes(store));
    const text =
      scopes.length === 0
        ? 'No scopes.'
        : columns(
            scopes.map((s) => [s.scope, `${s.keyClass ?? 'no key'}  ${s.clients.join(',') || '(no client)'}`]),
          ).join('\n');
    ctx.out.result({ scopes }, text);
  },
};

const grants: Command = {
  name: 'oauth grants',
  summary: 'List the apps this account granted, or revoke one with --revoke',
  options: { ...SERVER, revoke: { type: 'string', value: 'GRANT', description: 'revoke the grant with this id' } },
  async run(ctx) {
    const { session } = resumeSession(ctx);
    const revoke = ctx.args.string('revoke');
    if (revoke !== undefined) {
      await session.revokeOauthGrant(revoke);
      ctx.out.result({ revoked: revoke }, `Grant ${revoke} revoked.`);
      return;
    }
    const all = await session.listOauthGrants();
    const text =
      all.length === 0
        ? 'No apps granted.'
        : columns(all.map((g) => [g.grantId, `${g.clientName} (${g.clientId})  ${g.scopes.join(' ')}`])).join('\n');
    ctx.out.result({ grants: all }, text);
  },
};

export const oauthCommands: readonly Command[] = [clientAdd, clientList, clientRemove, scopeAdd, scopeList, grants];
