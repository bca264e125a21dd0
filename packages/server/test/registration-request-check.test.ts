import * as opaque from '@serenity-kit/opaque';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestServer, type TestServer } from '../../../test/support/server.js';

/**
 * Counts core's ristretto255 membership check as the server calls it, without changing it: the spy
 * calls the real function (nothing is mocked, only counted), so this sees how often a sign-up start
 * checks its registration request.
 */
const counted = vi.hoisted(() => ({ calls: 0 }));
vi.mock('@latchkey/core', async (importOriginal) => {
  const core = await importOriginal<typeof import('@latchkey/core')>();
  return {
    ...core,
    isRistretto255Element: (bytes: Uint8Array) => {
      counted.calls++;
      return core.isRistretto255Element(bytes);
    },
  };
});

describe('a sign-up start', () => {
  let server: TestServer;
  beforeAll(async () => {
    await opaque.ready;
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it('checks its registration request once', async () => {
    const { registrationRequest } = opaque.client.startRegistration({ password: 'checked once' });
    counted.calls = 0;
    const response = await fetch(`${server.url}/v1/account/register/start`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'checked-once@example.com', registrationRequest }),
    });
    expect(response.status).toBe(200);
    expect(counted.calls).toBe(1);
  });

  it('still refuses a request that is no group element, before anything is counted', async () => {
    const notAnElement = Buffer.alloc(32, 0xff).toString('base64url');
    counted.calls = 0;
    const response = await fetch(`${server.url}/v1/account/register/start`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'checked-once@example.com', registrationRequest: notAnElement }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe('LK_OPAQUE_MESSAGE_INVALID');
    expect(counted.calls).toBe(1);
  });
});
