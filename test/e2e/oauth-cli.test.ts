import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliError, cliJson, lines } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { authorizationUrl, Browser, beginAuthorization, consent, encryptKeys, startApp } from '../support/oauth.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

/**
 * `latchkey oauth` (issue 9): the admin registers apps and scopes on the database while the server
 * runs, and the server serves them at once; a user lists and revokes their grants through the API.
 */
describe('latchkey oauth', () => {
  let server: TestServer;
  let home: string;
  const SCOPE = 'https://identity.example.org/apps/cli-notes';

  beforeAll(async () => {
    const port = await freePort();
    server = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}` });
    home = join(mkdtempSync(join(tmpdir(), 'latchkey-oauth-cli-')), 'state');
  });
  afterAll(async () => {
    await server?.close();
    rmSync(join(home, '..'), { recursive: true, force: true });
  });

  const admin = (...args: string[]) => cliJson(['oauth', ...args, '--db', server.config.databaseUrl], home);
  const adminError = (...args: string[]) => cliError(['oauth', ...args, '--db', server.config.databaseUrl], home);

  it('registers, lists and removes clients and scopes; a running server serves them at once', async () => {
    expect(
      await admin('client', 'add', 'cli-notes', '--name', 'CLI Notes', '--redirect-uri', 'https://n.example/cb'),
    ).toEqual({
      id: 'cli-notes',
      name: 'CLI Notes',
      redirectUris: ['https://n.example/cb'],
    });
    expect((await adminError('client', 'add', 'cli-notes', '--redirect-uri', 'https://n.example/cb')).code).toBe(
      'LK_OAUTH_CLIENT_EXISTS',
    );
    for (const usage of [
      ['client', 'add', 'bad', '--redirect-uri', 'not a url'],
      ['client', 'add', 'bad', '--redirect-uri', 'https://n.example/cb#fragment'],
      ['scope', 'add', SCOPE, '--keys', 'kC'],
    ]) {
      const refused = await cli(['oauth', ...usage, '--db', server.config.databaseUrl, '--json'], home);
      expect(refused.code).toBe(2);
      expect(JSON.parse(refused.stdout)).toMatchObject({ error: { code: 'LK_USAGE' } });
    }
    expect((await adminError('scope', 'add', SCOPE, '--keys', 'kB', '--clients', 'nobody')).code).toBe(
      'LK_OAUTH_CLIENT_NOT_FOUND',
    );
    await admin('scope', 'add', SCOPE, '--keys', 'kB', '--clients', 'cli-notes');
    expect(await admin('scope', 'list')).toEqual({
      scopes: [{ scope: SCOPE, keyClass: 'kB', clients: ['cli-notes'] }],
    });
    expect((await admin('client', 'list')).clients).toHaveLength(1);

    const discovery = (await (await fetch(`${server.url}/oauth/.well-known/openid-configuration`)).json()) as {
      scopes_supported: string[];
    };
    expect(discovery.scopes_supported).toContain(SCOPE);

    await admin('client', 'add', 'gone', '--redirect-uri', 'https://g.example/cb');
    expect(await admin('client', 'remove', 'gone')).toEqual({ removed: 'gone' });
    expect((await adminError('client', 'remove', 'gone')).code).toBe('LK_OAUTH_CLIENT_NOT_FOUND');
  });

  it("lists the user's grants and revokes one through the API", async () => {
    const { client } = await createVerifiedAccount(server, 'grants@example.com', 'grants password');
    const token = (await client.logIn('grants@example.com', 'grants password')).state.token;
    const app = await startApp(server.url, 'cli-notes', 'https://n.example/cb');
    const browser = new Browser();
    const begun = await beginAuthorization(
      browser,
      server.url,
      await authorizationUrl(app, `openid ${SCOPE}`, { keys_jwk: app.keysJwk }),
    );
    const keysJwe = await encryptKeys(app.keysJwk, { [SCOPE]: { kty: 'oct', k: 'a2V5' } });
    expect((await consent(browser, server.url, begun.uid as string, token, { keys_jwe: keysJwe })).status).toBe(200);

    await cliJson(['account', 'login', 'grants@example.com', '--server', server.url], home, lines('grants password'));
    const { grants } = (await cliJson(['oauth', 'grants'], home)) as { grants: Array<Record<string, unknown>> };
    expect(grants).toEqual([
      { grantId: expect.any(String), clientId: 'cli-notes', clientName: 'CLI Notes', scopes: ['openid', SCOPE] },
    ]);
    const grantId = grants[0]?.grantId as string;
    expect(await cliJson(['oauth', 'grants', '--revoke', grantId], home)).toEqual({ revoked: grantId });
    expect(await cliJson(['oauth', 'grants'], home)).toEqual({ grants: [] });
    expect((await cliError(['oauth', 'grants', '--revoke', grantId], home)).code).toBe('LK_OAUTH_GRANT_NOT_FOUND');
  });
});
