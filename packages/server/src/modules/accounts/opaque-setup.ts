import type { MasterKey } from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import { loadOrCreateServerSecret } from '../../server-secrets.js';
import type { Store } from '../../store/store.js';

/**
 * The OPAQUE server setup (it holds the OPRF seed), made once and shared by every node, sealed under the
 * master key: a database dump alone gives no OPRF seed to mount offline guessing with.
 */
export async function loadOrCreateOpaqueSetup(
  store: Store,
  masterKey: MasterKey,
  random: (n: number) => Uint8Array,
): Promise<string> {
  await opaque.ready;
  return loadOrCreateServerSecret(store, masterKey, 'opaque_server_setup', () => opaque.server.createSetup(), random);
}
