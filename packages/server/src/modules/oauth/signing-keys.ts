import { type MasterKey, toBase64Url } from '@latchkey/core';
import { exportJWK, generateKeyPair } from 'jose';
import { loadOrCreateServerSecret } from '../../server-secrets.js';
import type { Store } from '../../store/store.js';

const SIGNING_KEY = 'oauth_signing_key';
const COOKIE_KEYS = 'oauth_cookie_keys';

/**
 * The OAuth server's secrets, made once and shared by every node through the database, sealed under the
 * master key like the OPAQUE setup: the ES256 key that signs ID tokens, and the keys of oidc-provider's
 * signed cookies (a node must accept the interaction cookie another node set).
 */
export async function loadOrCreateOauthSecrets(store: Store, masterKey: MasterKey, random: (n: number) => Uint8Array) {
  const signingKey = await loadOrCreateServerSecret(
    store,
    masterKey,
    SIGNING_KEY,
    async () => {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = await exportJWK(privateKey);
      return JSON.stringify({ ...jwk, alg: 'ES256', use: 'sig', kid: toBase64Url(random(8)) });
    },
    random,
  );
  const cookieKeys = await loadOrCreateServerSecret(
    store,
    masterKey,
    COOKIE_KEYS,
    () => JSON.stringify([toBase64Url(random(32))]),
    random,
  );
  return {
    signingKey: JSON.parse(signingKey) as Record<string, string>,
    cookieKeys: JSON.parse(cookieKeys) as string[],
  };
}
