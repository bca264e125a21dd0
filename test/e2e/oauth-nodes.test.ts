import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LatchkeyClient } from '@latchkey/client';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import { authorizeApp, KEY_SCOPE, redeemCode, registerApps } from '../support/oauth.js';
import { createTestDatabase } from '../support/postgres.js';
import { TEST_KEY_STRETCHING } from '../support/server.js';
import { type ServerProcess, startServerProcess } from '../support/server-process.js';

/**
 * Issue 9: the OAuth server is stateless. Two server processes on one PostgreSQL database, behind one
 * public URL as a load balancer would put them: the authorization begins on one, the consent page talks
 * to the other, the browser resumes on the first, and the app redeems its code (getting keys_jwe) on the
 * second. Codes, interactions, grants, the signing key and the cookie keys all live in the database.
 */
describe('oauth across two server processes on one PostgreSQL', () => {
  let a: ServerProcess;
  let b: ServerProcess;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-oauth-nodes-'));
    const databaseUrl = await createTestDatabase(inject('postgresUrl'), 'oauth_nodes');
    const masterKeyFile = join(dir, 'master.key');
    const portA = await freePort();
    const publicUrl = `http://127.0.0.1:${portA}`;
    a = await startServerProcess({ config: { databaseUrl, masterKeyFile, port: portA, publicUrl } });
    b = await startServerProcess({ config: { databaseUrl, masterKeyFile, publicUrl } });
    await registerApps(databaseUrl);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('authorizes on one node and redeems the code with its keys_jwe on the other', async () => {
    // Pinned, as an app must to use the server processes' cheap test setting: unpinned, the SDK refuses it.
    const user = new LatchkeyClient({ serverUrl: b.url, keyStretching: TEST_KEY_STRETCHING });
    await user.signUp('nodes@example.com', 'nodes password');
    await user.verifyEmail('nodes@example.com', await b.codeFor('nodes@example.com'));
    const token = (await user.logIn('nodes@example.com', 'nodes password')).state.token;

    const keys = { [KEY_SCOPE]: { kty: 'oct', k: 'a2V5' } };
    const { app, params, keysJwe } = await authorizeApp({ baseUrl: a.url, consentUrl: b.url, token, keys });

    const onB = { ...app.as, token_endpoint: `${b.url}/oauth/token` };
    const response = await redeemCode(app, params, { as: onB });
    const tokens = await oauth.processAuthorizationCodeResponse(onB, app.client, response);
    expect(tokens.keys_jwe).toBe(keysJwe);
    // The ID token B signed verifies against the keys A publishes: one signing key for the cluster.
    expect(oauth.getValidatedIdTokenClaims(tokens)?.aud).toBe('notes');

    const replay = await redeemCode(app, params);
    expect(replay.status).toBe(400);
    expect(((await replay.json()) as { error: string }).error).toBe('invalid_grant');
  });
});
