/**
 * The consent page's and the relier's scoped-key code, bundled alone for Chromium by
 * test/browser/scoped-keys.test.ts: it imports the core modules directly (not core's index), so the
 * test proves these modules and everything they pull in run in a browser.
 */
import { fromHex, fromUtf8 } from '../../packages/core/src/encoding.js';
import { deriveFxaScopedKey } from '../../packages/core/src/scoped-keys/derive.js';
import {
  createKeysJwkPair,
  decryptScopedKeys,
  encryptScopedKeys,
  openKeysJwe,
} from '../../packages/core/src/scoped-keys/keys-jwe.js';
import { parseKeysJwk } from '../../packages/core/src/scoped-keys/keys-jwk.js';

export {
  createKeysJwkPair,
  decryptScopedKeys,
  deriveFxaScopedKey,
  encryptScopedKeys,
  fromHex,
  fromUtf8,
  openKeysJwe,
  parseKeysJwk,
};
