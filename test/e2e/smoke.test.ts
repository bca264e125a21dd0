import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

describe('smoke', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => server.close());

  it('signs up, logs in, and gets the same kB back', async () => {
    const { client } = await createVerifiedAccount(server, 'smoke@example.com', 'correct horse battery');
    const a = await client.logIn('smoke@example.com', 'correct horse battery');
    const b = await client.logIn('smoke@example.com', 'correct horse battery');
    expect(a.kB).toHaveLength(32);
    expect(Buffer.from(a.kB).equals(Buffer.from(b.kB))).toBe(true);
    expect(Buffer.from(a.kA).equals(Buffer.from(b.kA))).toBe(true);
  });
});
