import { fromUtf8, type MasterKey, openAtRest, sealAtRest, utf8 } from '@latchkey/core';
import type { Store } from './store/store.js';

/**
 * A server secret made once and shared by every node through the database, sealed under the master
 * key: a database dump alone does not hold it. The first node to start makes it (`make`); a node that
 * loses the race to store it takes the winner's, so every node ends up with the same value.
 */
export async function loadOrCreateServerSecret(
  store: Store,
  masterKey: MasterKey,
  name: string,
  make: () => string | Promise<string>,
  random: (n: number) => Uint8Array,
): Promise<string> {
  let sealed = await store.getServerSecret(name);
  if (sealed === undefined) {
    const fresh = sealAtRest(masterKey, 'server-secret', name, utf8(await make()), random(12));
    sealed = await store.putServerSecretOnce(name, fresh);
  }
  try {
    return fromUtf8(openAtRest(masterKey, 'server-secret', name, sealed));
  } catch {
    throw new Error(`the ${name} in the database does not open with this master key: wrong key file?`);
  }
}
