import { fromBase64Url, utf8 } from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';
import { findSecrets, type Secret, searchedSize } from '../support/secret-search.js';
import { createVerifiedAccount, startTestServer, TEST_KEY_STRETCHING, type TestServer } from '../support/server.js';

/**
 * The server must never hold a password, an OPAQUE export key, kB or a bearer token in a form that
 * reveals it. This drives an account through sign-up, login, password change and reset, collecting
 * every such secret, then searches the database's files byte for byte in every common spelling.
 */

/** A raw OPAQUE login over HTTP, to learn the export key the SDK derives (and never sends). */
async function exportKeyOf(server: TestServer, email: string, password: string): Promise<Uint8Array> {
  await opaque.ready;
  const post = async (path: string, body: unknown) => {
    const response = await fetch(new URL(path, server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as Record<string, string>;
  };
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const started = await post('/v1/session/login/start', { email, startLoginRequest });
  const finished = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: started.loginResponse as string,
    password,
    keyStretching: TEST_KEY_STRETCHING,
  });
  if (finished === undefined) throw new Error('raw login failed');
  await post('/v1/session/login/finish', { loginId: started.loginId, finishLoginRequest: finished.finishLoginRequest });
  return fromBase64Url(finished.exportKey);
}

/** The full account life cycle; returns every secret it saw. */
async function exerciseAccount(server: TestServer): Promise<Secret[]> {
  const email = 'secret-keeper@example.com';
  const [first, second, third] = ['first Pässwörd 1', 'second Pässwörd 2', 'third Pässwörd 3'];
  const secrets: Secret[] = [];
  const keep = (name: string, bytes: Uint8Array) => secrets.push({ name, bytes: new Uint8Array(bytes) });

  const { client } = await createVerifiedAccount(server, email, first);
  const session = await client.logIn(email, first);
  keep('password 1', utf8(first));
  keep('kB (sign-up)', session.kB);
  keep('kA', session.kA);
  keep('session token 1', fromBase64Url(session.state.token));
  keep('export key 1', await exportKeyOf(server, email, first));

  await session.changePassword(first, second);
  keep('password 2', utf8(second));
  keep('export key 2', await exportKeyOf(server, email, second));

  const sent = server.smtp.messages.length;
  await client.requestReset(email);
  await client.completeReset(email, await server.smtp.codeFor(email, { after: sent }), third);
  const afterReset = await client.logIn(email, third);
  keep('password 3', utf8(third));
  keep('kB (after reset)', afterReset.kB);
  keep('session token 2', fromBase64Url(afterReset.state.token));
  keep('export key 3', await exportKeyOf(server, email, third));
  return secrets;
}

describe('no secret at rest: SQLite', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => server.close());

  it('the database files hold no password, export key, kB, kA or token in any spelling', async () => {
    const secrets = await exerciseAccount(server);
    expect(secrets).toHaveLength(11);
    await server.app.close(); // flushes the WAL into the main file; both are searched anyway
    const files = searchedSize(server.dir);
    expect(files.bytes).toBeGreaterThan(10_000);
    // The search must be able to see what it looks for: the account's email is stored in clear.
    expect(findSecrets(server.dir, [{ name: 'email', bytes: utf8('secret-keeper@example.com') }])).not.toEqual([]);
    expect(findSecrets(server.dir, secrets)).toEqual([]);
  });
});

describe('no secret at rest: PostgreSQL', () => {
  let cluster: PostgresCluster;
  let server: TestServer;
  beforeAll(async () => {
    cluster = await startPostgres();
    server = await startTestServer({ databaseUrl: await cluster.createDatabase('secrets') });
  });
  afterAll(async () => {
    await server?.close();
    await cluster?.stop();
  });

  it('the data directory (tables and WAL) holds no password, export key, kB, kA or token', async () => {
    const secrets = await exerciseAccount(server);
    await server.app.close();
    await cluster.checkpoint();
    const files = searchedSize(cluster.dataDir);
    expect(files.bytes).toBeGreaterThan(1_000_000);
    // The search must be able to see what it looks for: the account's email is stored in clear.
    expect(findSecrets(cluster.dataDir, [{ name: 'email', bytes: utf8('secret-keeper@example.com') }])).not.toEqual([]);
    expect(findSecrets(cluster.dataDir, secrets)).toEqual([]);
  });
});
