/**
 * @latchkey/core: the protocol without I/O. Crypto wrappers, formats, schemas, error codes.
 * Everything takes bytes, time and randomness as inputs.
 */

export * from './accounts/keys.js';
export * from './accounts/policy.js';
export * from './brand.js';
export * from './crypto/envelope.js';
export * from './crypto/primitives.js';
export * from './encoding.js';
export * from './errors.js';
export * from './protocol/accounts.js';
export * from './protocol/common.js';
