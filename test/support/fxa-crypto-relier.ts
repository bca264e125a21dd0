import { createRequire } from 'node:module';
import type { ScopedKeyJwk } from '@latchkey/core';

/**
 * Mozilla's fxa-crypto-relier 2.7.0, typed for the parts the interop test and the scoped-keys bench
 * call. It is CommonJS on node-jose, node-hkdf and base64url and runs on Node 20 as it is: `require` of
 * its `src/` entry points (its `dist/` is a webpack bundle for browsers).
 */
const require = createRequire(import.meta.url);

export interface FxaScopedKeyOptions {
  inputKey: string;
  uid: string;
  identifier: string;
  keyRotationSecret: string;
  keyRotationTimestamp: number;
}
export interface FxaScopedKeys {
  deriveScopedKey(options: FxaScopedKeyOptions): Promise<ScopedKeyJwk>;
}
export interface FxaDeriverUtils {
  encryptBundle(keysJwk: string, bundle: string): Promise<string>;
}
export interface FxaKeyUtils {
  createApplicationKeyPair(): Promise<{ jwkPublicKey: Record<string, string> }>;
  decryptBundle(keysJwe: string): Promise<Record<string, ScopedKeyJwk>>;
}

export const deriver = require('fxa-crypto-relier/src/deriver') as {
  ScopedKeys: new () => FxaScopedKeys;
  DeriverUtils: new () => FxaDeriverUtils;
};
export const relier = require('fxa-crypto-relier/src/relier') as { KeyUtils: new () => FxaKeyUtils };
