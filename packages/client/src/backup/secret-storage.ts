import {
  decryptSecretBytes,
  type EncryptedSecret,
  encryptSecretBytes,
  type MatrixCrypto,
  makeKeyCheck,
  SECRET_STORAGE_ALGORITHM,
  type SecretItemBody,
  type StorageKeyDescriptionBody,
  type StorageKeyListBody,
} from '@latchkey/core';
import { randomBytes } from '../random.js';

/** How the SDK reaches the server as the logged-in account (a Session supplies it). */
export type AuthedRequest = <T>(method: string, path: string, body?: unknown) => Promise<T>;

/**
 * Secret storage over HTTP (Matrix "Secrets"): storage keys are described on the server by their
 * public parts and a key check; secrets are stored encrypted under one or more of them.
 */
export class SecretStorage {
  constructor(
    private readonly request: AuthedRequest,
    private readonly crypto: MatrixCrypto,
  ) {}

  /** Publishes a storage key's description (with a fresh key check), never the key. */
  async describeKey(keyId: string, key: Uint8Array, extra: Omit<StorageKeyDescriptionBody, 'algorithm'> = {}) {
    const description: StorageKeyDescriptionBody = {
      ...extra,
      algorithm: SECRET_STORAGE_ALGORITHM,
      ...makeKeyCheck(this.crypto, key, randomBytes(16)),
    };
    await this.request('PUT', `/v1/secret-storage/keys/${encodeURIComponent(keyId)}`, description);
    return description;
  }

  async setDefaultKey(keyId: string) {
    await this.request('PUT', '/v1/secret-storage/default-key', { key: keyId });
  }

  async keys(): Promise<StorageKeyListBody> {
    return this.request<StorageKeyListBody>('GET', '/v1/secret-storage/keys');
  }

  /**
   * Stores `secret` encrypted under every given storage key, replacing the stored item. `keep` carries
   * over copies already encrypted under other keys (the same secret, so they still open it): a write
   * by this SDK does not take the secret away from keys it does not hold, such as a Matrix client's.
   */
  async store(
    name: string,
    secret: Uint8Array,
    keys: Array<{ keyId: string; key: Uint8Array }>,
    keep: Readonly<Record<string, EncryptedSecret>> = {},
  ) {
    const encrypted: Record<string, EncryptedSecret> = { ...keep };
    for (const { keyId, key } of keys)
      encrypted[keyId] = encryptSecretBytes(this.crypto, key, name, secret, randomBytes(16));
    await this.request('PUT', `/v1/secret-storage/secrets/${encodeURIComponent(name)}`, { encrypted });
  }

  async fetch(name: string): Promise<SecretItemBody> {
    return this.request<SecretItemBody>('GET', `/v1/secret-storage/secrets/${encodeURIComponent(name)}`);
  }

  /** Decrypts a fetched secret with the storage key `keyId`; undefined when it is not stored under that key. */
  open(item: SecretItemBody, name: string, keyId: string, key: Uint8Array): Uint8Array | undefined {
    const encrypted = Object.hasOwn(item.encrypted, keyId) ? item.encrypted[keyId] : undefined;
    return encrypted === undefined ? undefined : decryptSecretBytes(this.crypto, key, name, encrypted);
  }
}
