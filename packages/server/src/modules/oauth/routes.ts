import { ServerResponse } from 'node:http';
import { checkKeysJwe, LatchkeyError, scopedKeyRotationTimestamp } from '@latchkey/core';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import type { ServerContext } from '../../context.js';
import { route } from '../../route.js';
import type { OauthScopeRow } from '../../store/schema.js';
import { type AuthenticatedSession, requireFreshAuth } from '../accounts/service.js';
import { scopesAllowedByRows } from './clients.js';
import { INTERACTION_PREFIX } from './provider.js';

const tag = 'oauth';
/** oidc-provider's ids are nanoids: URL-safe base64 characters. */
const OIDC_ID = { pattern: '^[A-Za-z0-9_-]{1,64}$' };
const UidParams = Type.Object({ uid: Type.String(OIDC_ID) });
const GrantParams = Type.Object({ grantId: Type.String(OIDC_ID) });
const ScopeInfo = Type.Object({
  scope: Type.String(),
  keyClass: Type.Union([Type.Literal('kA'), Type.Literal('kB'), Type.Null()]),
});
const InteractionDetails = Type.Object({
  uid: Type.String(),
  client: Type.Object({ id: Type.String(), name: Type.String() }),
  scopes: Type.Array(ScopeInfo),
  keysRequested: Type.Boolean(),
  /** The app's one-time public key, which the consent page encrypts the keys to; absent when no keys are asked for. */
  keysJwk: Type.Optional(Type.String()),
});
// Bounded loosely here: anything over Firefox Accounts' 1,024 characters gets the precise LK_OAUTH_KEYS_JWE_INVALID.
const ConsentBody = Type.Object(
  { keys_jwe: Type.Optional(Type.String({ maxLength: 4096 })) },
  { additionalProperties: false },
);
const Redirect = Type.Object({ redirectTo: Type.String() });
const KeyDataBody = Type.Object(
  { client_id: Type.String({ minLength: 1, maxLength: 255 }), scope: Type.String({ minLength: 1, maxLength: 2048 }) },
  { additionalProperties: false },
);
const KeyData = Type.Record(
  Type.String(),
  Type.Object({
    identifier: Type.String(),
    keyRotationSecret: Type.String(),
    keyRotationTimestamp: Type.Number(),
    keyClass: Type.Union([Type.Literal('kA'), Type.Literal('kB')]),
  }),
);
const GrantList = Type.Object({
  grants: Type.Array(
    Type.Object({
      grantId: Type.String(),
      clientId: Type.String(),
      clientName: Type.String(),
      scopes: Type.Array(Type.String()),
    }),
  ),
});

/**
 * The consent page's API (issue 9). Each interaction route is bound to the browser that began the
 * authorization request: oidc-provider's signed interaction cookie must name the same uid as the URL
 * (cross-site requests do not carry it, SameSite=Lax), and finishing also needs our bearer session
 * token, which a cross-site form cannot send. Only a freshly authenticated session may consent or read
 * key rotation secrets.
 */
export async function oauthRoutes(
  app: FastifyInstance,
  opts: { ctx: ServerContext; provider: () => Promise<Provider> },
) {
  const { ctx } = opts;
  const r = route(app, ctx);

  // Where oidc-provider sends the browser: the web app's consent page (hash-routed) for this uid.
  app.get(`${INTERACTION_PREFIX}/:uid`, { schema: { hide: true } }, async (request, reply) => {
    const { uid } = request.params as { uid: string };
    return reply.redirect(`/#/oauth/consent/${encodeURIComponent(uid)}`, 303);
  });

  r.get(`${INTERACTION_PREFIX}/:uid/details`, {
    tag,
    summary: 'What the app asks for: the client, its scopes, which carry keys',
    params: UidParams,
    reply: InteractionDetails,
    handler: async (request: FastifyRequest<{ Params: { uid: string } }>) => {
      const interaction = await boundInteraction(await opts.provider(), request, request.params.uid);
      const client = await ctx.store.oauth.findClient(interaction.params.client_id);
      if (client === undefined) throw new LatchkeyError('LK_OAUTH_CLIENT_NOT_FOUND');
      const registered = new Map((await ctx.store.oauth.listScopes()).map((row) => [row.scope, row]));
      const requested = String(interaction.params.scope ?? '')
        .split(' ')
        .filter(Boolean);
      return {
        uid: interaction.uid,
        client: { id: client.id, name: client.name },
        scopes: requested.map((scope) => ({ scope, keyClass: registered.get(scope)?.key_class ?? null })),
        keysRequested: interaction.params.keys_jwk !== undefined,
        // Public by nature, and already checked by the provider's keys_jwk validator.
        ...(interaction.params.keys_jwk === undefined ? {} : { keysJwk: interaction.params.keys_jwk }),
      };
    },
  });

  r.post(`${INTERACTION_PREFIX}/:uid/consent`, {
    tag,
    summary: 'Grant the request as the signed-in user, relaying the browser-made keys_jwe',
    params: UidParams,
    body: ConsentBody,
    reply: Redirect,
    guarded: true,
    handler: async (request: FastifyRequest<{ Params: { uid: string }; Body: { keys_jwe?: string } }>, auth) => {
      requireFreshAuth(ctx, auth);
      const provider = await opts.provider();
      const interaction = await boundInteraction(provider, request, request.params.uid);
      const keysJwe = checkedKeysJwe(interaction, request.body.keys_jwe);
      const accountId = auth.account.id;
      const existing = interaction.grantId === undefined ? undefined : await provider.Grant.find(interaction.grantId);
      const grant =
        existing !== undefined && existing.accountId === accountId
          ? existing
          : new provider.Grant({ accountId, clientId: interaction.params.client_id });
      grant.addOIDCScope(String(interaction.params.scope ?? 'openid'));
      const grantId = await grant.save();
      const result = { login: { accountId }, consent: { grantId }, ...(keysJwe === undefined ? {} : { keysJwe }) };
      const redirectTo = await provider.interactionResult(request.raw, rawReply(request), result, {
        mergeWithLastSubmission: false,
      });
      return { redirectTo };
    },
  });

  r.post(`${INTERACTION_PREFIX}/:uid/abort`, {
    tag,
    summary: 'Refuse the request: the app gets access_denied',
    params: UidParams,
    reply: Redirect,
    handler: async (request: FastifyRequest<{ Params: { uid: string } }>) => {
      const provider = await opts.provider();
      await boundInteraction(provider, request, request.params.uid);
      const result = { error: 'access_denied', error_description: 'the user refused' };
      const redirectTo = await provider.interactionResult(request.raw, rawReply(request), result, {
        mergeWithLastSubmission: false,
      });
      return { redirectTo };
    },
  });

  r.post('/v1/oauth/key-data', {
    tag,
    summary: 'Scoped-key metadata (identifier, keyRotationSecret, keyRotationTimestamp) for the consent page',
    body: KeyDataBody,
    reply: KeyData,
    guarded: true,
    handler: async (request: FastifyRequest<{ Body: { client_id: string; scope: string } }>, auth) => {
      requireFreshAuth(ctx, auth);
      return keyData(ctx, auth, request.body.client_id, request.body.scope);
    },
  });

  r.get('/v1/oauth/grants', {
    tag,
    summary: 'The apps this account has granted, and what',
    reply: GrantList,
    guarded: true,
    handler: async (_request, auth) => {
      const rows = await ctx.store.oauth.listGrants(auth.account.id, ctx.now());
      const names = new Map((await ctx.store.oauth.listClients()).map((client) => [client.id, client.name]));
      const grants = rows.map((row) => {
        const payload = JSON.parse(row.payload) as { clientId: string; openid?: { scope?: string } };
        return {
          grantId: row.id,
          clientId: payload.clientId,
          clientName: names.get(payload.clientId) ?? payload.clientId,
          scopes: (payload.openid?.scope ?? '').split(' ').filter(Boolean),
        };
      });
      return { grants };
    },
  });

  r.delete('/v1/oauth/grants/:grantId', {
    tag,
    summary: "Revoke a grant: the app's tokens and codes under it stop working",
    params: GrantParams,
    reply: Type.Object({}),
    guarded: true,
    handler: async (request: FastifyRequest<{ Params: { grantId: string } }>, auth) => {
      const row = await ctx.store.oauth.findPayload('Grant', request.params.grantId);
      if (row === undefined || row.account_id !== auth.account.id) throw new LatchkeyError('LK_OAUTH_GRANT_NOT_FOUND');
      await ctx.store.oauth.revokeByGrantId(row.id);
      await ctx.store.oauth.destroyPayload('Grant', row.id);
      return {};
    },
  });
}

/**
 * oidc-provider's interaction helpers take Node's request and response, but only read cookies from
 * them: a detached response keeps Fastify's reply ours to send.
 */
function rawReply(request: FastifyRequest): ServerResponse {
  return new ServerResponse(request.raw);
}

/**
 * The interaction named by the URL, if and only if this browser's signed interaction cookie names it
 * too: the CSRF check for every interaction route.
 */
async function boundInteraction(provider: Provider, request: FastifyRequest, uid: string): Promise<Interaction> {
  let interaction: Interaction;
  try {
    interaction = await provider.interactionDetails(request.raw, rawReply(request));
  } catch {
    throw new LatchkeyError('LK_OAUTH_INTERACTION_INVALID');
  }
  if (interaction.uid !== uid) throw new LatchkeyError('LK_OAUTH_INTERACTION_INVALID');
  return interaction;
}

/** The keys_jwe to relay: required, well formed and short when the app sent keys_jwk; refused otherwise. */
function checkedKeysJwe(interaction: Interaction, keysJwe: string | undefined): string | undefined {
  const keysRequested = interaction.params.keys_jwk !== undefined;
  if (!keysRequested) {
    if (keysJwe !== undefined) throw new LatchkeyError('LK_OAUTH_KEYS_JWE_INVALID', 'The app asked for no keys.');
    return undefined;
  }
  if (keysJwe === undefined)
    throw new LatchkeyError('LK_OAUTH_KEYS_JWE_INVALID', 'The app asked for keys: send keys_jwe.');
  checkKeysJwe(keysJwe);
  return keysJwe;
}

/**
 * Firefox Accounts' scoped-key data for the key-bearing scopes among `scope` the client may ask for:
 * the scope as identifier, a random rotation secret per (account, scope), stored on first use, and the
 * time the keys last changed: the account's keys-changed time for kB-class keys (a password reset
 * rotates them), its creation for kA-class keys (kA survives a reset, so their kid must too).
 */
async function keyData(ctx: ServerContext, auth: AuthenticatedSession, clientId: string, scope: string) {
  if ((await ctx.store.oauth.findClient(clientId)) === undefined) throw new LatchkeyError('LK_OAUTH_CLIENT_NOT_FOUND');
  const registered = await ctx.store.oauth.listScopes();
  const allowed = new Set(scopesAllowedByRows(registered, clientId));
  const byName = new Map<string, OauthScopeRow>(registered.map((row) => [row.scope, row]));
  const out: Record<
    string,
    { identifier: string; keyRotationSecret: string; keyRotationTimestamp: number; keyClass: 'kA' | 'kB' }
  > = {};
  for (const name of scope.split(' ').filter(Boolean)) {
    if (!allowed.has(name)) throw new LatchkeyError('LK_OAUTH_SCOPE_INVALID', `This app may not ask for ${name}.`);
    const row = byName.get(name);
    if (row?.key_class == null) continue;
    const secret = await ctx.store.oauth.keyRotationSecret(auth.account.id, name, ctx.random(32));
    out[name] = {
      identifier: name,
      keyRotationSecret: Buffer.from(secret).toString('hex'),
      keyRotationTimestamp: scopedKeyRotationTimestamp(row.key_class, {
        createdAt: auth.account.created_at,
        keysChangedAt: auth.account.keys_changed_at,
      }),
      keyClass: row.key_class,
    };
  }
  return out;
}
