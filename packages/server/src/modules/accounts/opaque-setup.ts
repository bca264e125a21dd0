import { fromUtf8, type MasterKey, openAtRest, sealAtRest, utf8 } from '@latchkey/core';
import * as opaque from '@serenity-kit/opaque';
import type { Store } from '../../store/store.js';

const NAME = 'opaque_server_setup';

/**
 * The OPAQUE server setup is made once and shared by every node through the database, sealed under
 * the master key: a database dump alone gives no OPRF seed to mount offline guessing with.
 */
export async function loadOrCreateOpaqueSetup(
  store: Store,
  masterKey: MasterKey,
  random: (n: number) => Uint8Array,
): Promise<string> {
  await opaque.ready;
  let sealed = await store.getServerSecret(NAME);
  if (sealed === undefined) {
    const fresh = sealAtRest(masterKey, 'server-secret', NAME, utf8(opaque.server.createSetup()), random(12));
    sealed = await store.putServerSecretOnce(NAME, fresh);
  }
  try {
    return fromUtf8(openAtRest(masterKey, 'server-secret', NAME, sealed));
  } catch {
    throw new Error('the OPAQUE server setup in the database does not open with this master key: wrong key file?');
  }
}
