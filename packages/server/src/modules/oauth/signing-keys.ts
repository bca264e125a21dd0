import { randomBytes } from 'node:crypto';
import { fromUtf8, type MasterKey, openAtRest, sealAtRest, utf8 } from '@latchkey/core';
import { exportJWK, generateKeyPair } from 'jose';
import type { Store } from '../../store/store.js';

const SIGNING_KEY = 'oauth_signing_key';
const COOKIE_KEYS = 'oauth_cookie_keys';

/**
 * The OAuth server's secrets, made once and shared by every node through the database, sealed under the
 * master key like the OPAQUE setup: the ES256 key that signs ID tokens, and the keys of oidc-provider's
 * signed cookies (a node must accept the interaction cookie another node set).
 */
export async function loadOrCreateOauthSecrets(store: Store, masterKey: MasterKey) {
  const signingKey = await loadOrCreate(store, masterKey, SIGNING_KEY, async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    return JSON.stringify({ ...jwk, alg: 'ES256', use: 'sig', kid: randomBytes(8).toString('base64url') });
  });
  const cookieKeys = await loadOrCreate(store, masterKey, COOKIE_KEYS, async () =>
    JSON.stringify([randomBytes(32).toString('base64url')]),
  );
  return {
    signingKey: JSON.parse(signingKey) as Record<string, string>,
    cookieKeys: JSON.parse(cookieKeys) as string[],
  };
}

async function loadOrCreate(store: Store, masterKey: MasterKey, name: string, make: () => Promise<string>) {
  let sealed = await store.getServerSecret(name);
  if (sealed === undefined) {
    const fresh = sealAtRest(masterKey, 'server-secret', name, utf8(await make()), randomBytes(12));
    sealed = await store.putServerSecretOnce(name, fresh);
  }
  try {
    return fromUtf8(openAtRest(masterKey, 'server-secret', name, sealed));
  } catch {
    throw new Error(`the ${name} in the database does not open with this master key: wrong key file?`);
  }
}
