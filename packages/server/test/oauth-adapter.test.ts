import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../../../test/support/postgres.js';
import { adapterFor } from '../src/modules/oauth/adapter.js';
import { loadOidcProvider } from '../src/modules/oauth/oidc.js';
import { connect } from '../src/store/database.js';
import { openStore } from '../src/store/kysely-store.js';
import type { Store } from '../src/store/store.js';

/**
 * oidc-provider's adapter contract over our store, on both backends (conventions §3): what one node
 * writes another finds, lookups by uid / user code / grant, expiry, and single use under concurrency.
 */
const NOW = 1_750_000_000_000;

describe.each(['sqlite', 'postgres'] as const)('oauth adapter on %s', (backend) => {
  let store: Store;
  let dir: string;
  let Adapter: ReturnType<typeof adapterFor>;
  let clock = NOW;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-oauth-adapter-'));
    const url =
      backend === 'postgres'
        ? await createTestDatabase(inject('postgresUrl'), 'oauth_adapter')
        : `sqlite:${join(dir, 'db.sqlite')}`;
    store = await openStore(connect(url));
    const { errors } = await loadOidcProvider();
    Adapter = adapterFor(
      () => store.oauth,
      () => clock,
      errors,
    );
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds what it stored, by id, uid and user code, until it expires', async () => {
    const sessions = new Adapter('Session');
    await sessions.upsert('s1', { uid: 'u1', accountId: 'a' }, 60);
    expect(await sessions.find('s1')).toEqual({ uid: 'u1', accountId: 'a' });
    expect(await sessions.findByUid('u1')).toEqual({ uid: 'u1', accountId: 'a' });
    const devices = new Adapter('DeviceCode');
    await devices.upsert('d1', { userCode: 'ABCD' }, 60);
    expect(await devices.findByUserCode('ABCD')).toEqual({ userCode: 'ABCD' });
    clock = NOW + 61_000;
    expect(await sessions.find('s1')).toBeUndefined();
    clock = NOW;
  });

  it('revokes every model of a grant, and destroys one', async () => {
    const codes = new Adapter('AuthorizationCode');
    const tokens = new Adapter('AccessToken');
    await codes.upsert('c1', { grantId: 'g1' }, 60);
    await tokens.upsert('t1', { grantId: 'g1' }, 60);
    await tokens.upsert('t2', { grantId: 'g2' }, 60);
    await codes.revokeByGrantId('g1');
    expect(await codes.find('c1')).toBeUndefined();
    expect(await tokens.find('t1')).toBeUndefined();
    await tokens.destroy('t2');
    expect(await tokens.find('t2')).toBeUndefined();
  });

  it('lets exactly one of many concurrent consumers of a code win; the rest get invalid_grant', async () => {
    const codes = new Adapter('AuthorizationCode');
    await codes.upsert('race', { grantId: 'g' }, 60);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => codes.consume('race')));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes.filter((o) => o.status === 'rejected')) {
      expect((outcome as PromiseRejectedResult).reason).toMatchObject({ error: 'invalid_grant' });
    }
    expect((await codes.find('race'))?.consumed).toBe(Math.floor(NOW / 1000));
  });
});
