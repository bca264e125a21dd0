/**
 * @latchkey/core: the protocol without I/O. Crypto wrappers, formats, schemas, error codes.
 * Everything takes bytes, time and randomness as inputs.
 */

export * from './accounts/credentials.js';
export * from './accounts/key-stretching.js';
export * from './accounts/keys.js';
export * from './accounts/policy.js';
export * from './backup/better-key.js';
export * from './backup/room-key.js';
export * from './brand.js';
export * from './crypto/envelope.js';
export * from './crypto/node-aead.js';
export * from './crypto/primitives.js';
export * from './encoding.js';
export * from './encoding-json.js';
export * from './errors.js';
export * from './matrix/base58.js';
export * from './matrix/key-export.js';
export * from './matrix/matrix-crypto.js';
export * from './matrix/megolm-backup.js';
export * from './matrix/megolm-session.js';
export * from './matrix/recovery-key.js';
export * from './matrix/secret-storage.js';
export * from './protocol/accounts.js';
export * from './protocol/backup.js';
export * from './protocol/common.js';
export * from './registry/account-state.js';
export * from './registry/canonical-json.js';
export * from './registry/chain.js';
export * from './registry/link.js';
export * from './registry/link-body.js';
export * from './registry/link-builder.js';
export * from './registry/link-encoding.js';
export * from './registry/link-signatures.js';
export * from './scoped-keys/consent.js';
export * from './scoped-keys/derive.js';
export * from './scoped-keys/keys-jwe.js';
export * from './scoped-keys/keys-jwk.js';
export * from './scoped-keys/registration.js';
export * from './transparency-log/checkpoint.js';
export * from './transparency-log/cosignature.js';
export * from './transparency-log/merkle-tree.js';
export * from './transparency-log/proofs.js';
export * from './transparency-log/signed-note.js';
export * from './transparency-log/tiles.js';
export * from './transparency-log/witness-protocol.js';
