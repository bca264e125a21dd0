import type { Aead } from './envelope.js';

type NodeCrypto = typeof import('node:crypto');

/**
 * node:crypto when this runs in Node (`process.getBuiltinModule`, Node ≥ 20.16), else undefined: core
 * stays importable in a browser with no bundler shim, and Node gets OpenSSL's AES-GCM, about ten times
 * faster than the pure-JS one on the server's hot paths (bench/login.bench.ts).
 */
const nodeCrypto: NodeCrypto | undefined = globalThis.process?.getBuiltinModule?.('node:crypto');

const TAG_LENGTH = 16;

/** AES-256-GCM from node:crypto; undefined outside Node. */
export const nodeAead: Aead | undefined =
  nodeCrypto === undefined
    ? undefined
    : {
        encrypt(key, nonce, plaintext, aad) {
          const cipher = nodeCrypto.createCipheriv('aes-256-gcm', key, nonce).setAAD(aad);
          return new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
        },
        decrypt(key, nonce, sealed, aad) {
          const body = sealed.subarray(0, sealed.length - TAG_LENGTH);
          const decipher = nodeCrypto.createDecipheriv('aes-256-gcm', key, nonce).setAAD(aad);
          decipher.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH));
          return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]));
        },
      };
