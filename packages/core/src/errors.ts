/**
 * The one registry of stable `LK_*` error codes (conventions §4). A code is never reused or renamed:
 * clients and tests match on it, never on the message. `status` is the HTTP status the server answers
 * with; `expose: false` codes reach a client only as `LK_INTERNAL`, with the detail kept for the log.
 */
export const ERRORS = {
  // Transport and request shape.
  LK_INVALID_JSON: { status: 400, expose: true, message: 'The request body is not valid JSON.' },
  LK_VALIDATION: { status: 400, expose: true, message: 'The request does not match the schema.' },
  LK_BAD_BASE64: { status: 400, expose: true, message: 'A field is not canonical base64url.' },
  LK_BODY_TOO_LARGE: { status: 413, expose: true, message: 'The request body is too large.' },
  LK_UNSUPPORTED_MEDIA_TYPE: { status: 415, expose: true, message: 'Send application/json.' },
  LK_NOT_FOUND: { status: 404, expose: true, message: 'No such resource.' },
  LK_METHOD_NOT_ALLOWED: { status: 405, expose: true, message: 'Method not allowed here.' },
  LK_RATE_LIMITED: { status: 429, expose: true, message: 'Too many attempts; wait and try again.' },
  LK_INTERNAL: { status: 500, expose: true, message: 'Internal server error.' },
  LK_UNAVAILABLE: { status: 503, expose: true, message: 'The server is shutting down or overloaded.' },

  // Sessions.
  LK_UNAUTHORIZED: { status: 401, expose: true, message: 'A valid session token is required.' },
  LK_REAUTH_REQUIRED: {
    status: 403,
    expose: true,
    message: 'This action needs a fresh password check; re-authenticate and retry.',
  },
  LK_SESSION_NOT_FOUND: { status: 404, expose: true, message: 'No such session on this account.' },

  // Accounts.
  LK_INVALID_EMAIL: { status: 400, expose: true, message: 'That is not a usable email address.' },
  LK_EMAIL_TAKEN: { status: 409, expose: true, message: 'An account with that email already exists.' },
  LK_OPAQUE_MESSAGE_INVALID: { status: 400, expose: true, message: 'The OPAQUE message is malformed.' },
  LK_LOGIN_FAILED: { status: 401, expose: true, message: 'Wrong email or password.' },
  LK_LOGIN_ATTEMPT_INVALID: {
    status: 400,
    expose: true,
    message: 'This login attempt is unknown, expired or already used; start again.',
  },
  LK_ACCOUNT_UNVERIFIED: { status: 403, expose: true, message: 'Verify your email address first.' },
  LK_ACCOUNT_NOT_FOUND: { status: 404, expose: true, message: 'No such account.' },
  LK_CODE_INVALID: { status: 400, expose: true, message: 'That code is wrong, expired or already used.' },
  LK_SIGNUP_REPLACED: {
    status: 409,
    expose: true,
    message:
      'That code is for a later sign-up of this email, which replaced yours: it verifies nothing now. ' +
      'If you did not sign up again yourself, someone else tried to; sign up again to claim the address.',
  },
  LK_CODE_ATTEMPTS_EXHAUSTED: {
    status: 400,
    expose: true,
    message: 'Too many attempts at this code: it no longer works, even when right. Ask for a new one.',
  },
  LK_RESET_TOKEN_INVALID: {
    status: 400,
    expose: true,
    message: 'The reset token is wrong, expired or already used; request a new code.',
  },
  LK_REGISTRATION_TICKET_INVALID: {
    status: 400,
    expose: true,
    message:
      'The registration ticket is not from this registration start, or has expired; start the registration again.',
  },
  LK_WRAPPED_KEY_INVALID: { status: 400, expose: true, message: 'The wrapped key envelope is malformed.' },

  // Matrix formats: recovery keys, key backup, secret storage, key export files.
  LK_BAD_RECOVERY_KEY: { status: 400, expose: true, message: 'That is not a valid recovery key.' },
  LK_BACKUP_DECRYPT_FAILED: { status: 400, expose: true, message: 'A backed-up key does not decrypt.' },
  LK_SECRET_DECRYPT_FAILED: { status: 400, expose: true, message: 'A stored secret does not open with this key.' },
  LK_SESSION_KEY_INVALID: {
    status: 400,
    expose: true,
    message: "A room key's session_key is not an exported Megolm session (version 1, 165 bytes, base64).",
  },
  LK_BACKUP_KEY_REFUSED: {
    status: 400,
    expose: true,
    message:
      'A backed-up room key was refused: its room or session id does not match the key itself, so the ' +
      'server (or whoever wrote it) filed it under a name that is not its own.',
  },
  LK_ROOM_KEY_REFUSED: {
    status: 400,
    expose: true,
    message:
      "A room key was refused: its session id is not the session its session_key belongs to (the key's " +
      'own Ed25519 key), so whoever wrote it labelled it as another session.',
  },
  LK_RECOVERY_KEY_UNCHECKABLE: {
    status: 409,
    expose: true,
    message:
      "Cannot check this recovery key: the account's key description carries no key check (iv and mac), " +
      'so no key can be confirmed or refused against it. A restore with the key still tells: a wrong key ' +
      "fails on the secret's own MAC and imports nothing.",
  },
  LK_SECRET_STORAGE_UNSUPPORTED: {
    status: 400,
    expose: true,
    message: 'The secret storage key uses parameters this client does not support.',
  },
  LK_KEY_EXPORT_INVALID: { status: 400, expose: true, message: 'Not a usable key export file.' },
  LK_KEY_EXPORT_BAD_PASSPHRASE: {
    status: 400,
    expose: true,
    message: 'The key export file does not open with this passphrase.',
  },

  // Server-side key backup and secret storage.
  LK_BACKUP_NOT_FOUND: { status: 404, expose: true, message: 'No such backup version (or no backup yet).' },
  LK_WRONG_BACKUP_VERSION: {
    status: 403,
    expose: true,
    message: 'Keys can only be written to the current backup version.',
  },
  LK_BACKUP_KEY_NOT_FOUND: { status: 404, expose: true, message: 'No such key in this backup.' },
  LK_BACKUP_ALGORITHM_MISMATCH: {
    status: 400,
    expose: true,
    message: "A backup version's algorithm cannot change; create a new version.",
  },
  LK_SECRET_NOT_FOUND: { status: 404, expose: true, message: 'No such secret or storage key.' },

  // Client-side backup and recovery.
  LK_BAD_PASSPHRASE: { status: 400, expose: true, message: 'That passphrase does not open the backup.' },
  LK_BACKUP_KEY_MISMATCH: {
    status: 400,
    expose: true,
    message: "The stored backup key does not match the backup's public key.",
  },
  LK_BACKUP_UNTRUSTED: {
    status: 400,
    expose: true,
    message: 'The backup is not signed by this account; refusing to upload keys to it.',
  },
  LK_NO_RECOVERY_METHOD: {
    status: 400,
    expose: true,
    message: 'Give a recovery key or passphrase (or log in on a device this account trusts).',
  },
  LK_BACKUP_EXISTS: {
    status: 409,
    expose: true,
    message: 'A backup already exists; replacing it makes a new backup key and recovery key.',
  },

  // Client-side (the SDK raises these; the server never sees the inputs behind them).
  LK_PASSWORD_TOO_SHORT: { status: 400, expose: true, message: 'Use a password of at least 8 characters.' },
  LK_KEY_UNWRAP_FAILED: {
    status: 400,
    expose: true,
    message: 'A key could not be decrypted: wrong password, or the data was tampered with.',
  },
  LK_NOT_LOGGED_IN: { status: 401, expose: true, message: 'Log in first.' },
  LK_KEYSTORE_CLOSED: {
    status: 409,
    expose: true,
    message: 'This keystore is closed (closed, or its session logged out): log in and open it again.',
  },
  LK_KEYSTORE_KEY_CHANGED: {
    status: 409,
    expose: true,
    message:
      "This device's keystore was sealed under another kB (the password was reset since), so its keys " +
      'cannot be read. Clear it, then restore from the backup with the recovery key.',
  },
  LK_NETWORK: { status: 503, expose: true, message: 'The server could not be reached.' },
  LK_SERVER_PROTOCOL: { status: 502, expose: true, message: 'The server answered something unexpected.' },
  // The server's advertised OPAQUE key stretching (Argon2id), refused before anything is stretched or sent.
  LK_KDF_TOO_WEAK: {
    status: 502,
    expose: true,
    message:
      'The server asks for password stretching weaker than the minimum (Argon2id, 64 MiB, 3 passes), which ' +
      'would make the password easy to crack; nothing was sent. The server may be misconfigured or impersonated.',
  },
  LK_KDF_TOO_COSTLY: {
    status: 502,
    expose: true,
    message:
      'The server asks for password stretching costlier than this device allows (at most 2 GiB of memory); ' +
      'nothing was sent. The server may be misconfigured or impersonated.',
  },
  LK_KDF_MISMATCH: {
    status: 502,
    expose: true,
    message:
      'The server asks for password stretching other than the one this app expects; nothing was sent. ' +
      'The server may have been reconfigured or impersonated.',
  },
  LK_KDF_INVALID: {
    status: 502,
    expose: true,
    message: 'The password stretching setting is not a valid Argon2id setting.',
  },

  // OAuth (issue 9): the consent page's API; oidc-provider's own endpoints answer in OAuth's error shape.
  LK_OAUTH_INTERACTION_INVALID: {
    status: 403,
    expose: true,
    message: "This authorization request is unknown, expired, or not this browser's; start it again from the app.",
  },
  LK_OAUTH_KEYS_JWE_INVALID: {
    status: 400,
    expose: true,
    message: 'keys_jwe must be a compact JWE of at most 1,024 characters, sent only when the app asked for keys.',
  },
  LK_OAUTH_SCOPE_INVALID: {
    status: 400,
    expose: true,
    message: 'The scope is not registered, or this app may not ask for it.',
  },
  // OAuth (issue 9), the app's side: what the SDK's finishAuthorization() refuses.
  LK_OAUTH_STATE_MISMATCH: {
    status: 400,
    expose: true,
    message: 'The callback does not carry the state this authorization started with; it is not the answer to it.',
  },
  LK_OAUTH_ERROR: {
    status: 400,
    expose: true,
    message: 'The authorization server answered with an OAuth error (see details.error and details.errorDescription).',
  },
  LK_OAUTH_KEYS_MISSING: {
    status: 400,
    expose: true,
    message: 'Scoped keys were asked for, but the token response carries no keys_jwe.',
  },
  LK_OAUTH_RESPONSE_INVALID: {
    status: 400,
    expose: true,
    message: 'The authorization server sent a response that is not valid OAuth (see details.reason).',
  },
  LK_OAUTH_CLIENT_NOT_FOUND: { status: 404, expose: true, message: 'No such OAuth client.' },
  LK_OAUTH_CLIENT_EXISTS: { status: 409, expose: true, message: 'An OAuth client with that id already exists.' },
  LK_OAUTH_GRANT_NOT_FOUND: { status: 404, expose: true, message: 'No such grant on this account.' },

  // Server start-up (never sent to a client): a setting or the master key file is unusable.
  LK_CONFIG_INVALID: { status: 500, expose: false, message: 'The server configuration is invalid.' },
  LK_PORT_IN_USE: {
    status: 500,
    expose: false,
    message: 'Another program already listens on that address and port; pick another port.',
  },

  // The CLI (never sent by the server).
  LK_USAGE: { status: 400, expose: true, message: 'Wrong command line; see --help.' },
  LK_CANCELLED: { status: 400, expose: true, message: 'Cancelled: nothing was changed.' },
  LK_PASSWORD_MISMATCH: { status: 400, expose: true, message: 'The two passwords differ.' },
  LK_FILE_EXISTS: { status: 409, expose: true, message: 'The file exists; nothing was written.' },
  LK_FILE_UNREADABLE: { status: 400, expose: true, message: 'The file cannot be read.' },
  LK_LOCKED: {
    status: 401,
    expose: true,
    message: 'LATCHKEY_SESSION is set, but nothing is unlocked; run `latchkey unlock` again.',
  },
  LK_UNLOCK_EXPIRED: { status: 401, expose: true, message: 'The unlock has expired; run `latchkey unlock` again.' },
  LK_UNLOCK_KEY_INVALID: {
    status: 401,
    expose: true,
    message: 'LATCHKEY_SESSION does not open the unlocked keys; run `latchkey unlock` again.',
  },

  // Scoped keys for OAuth apps (issue 9, FxA's format): derivation inputs, keys_jwk and keys_jwe.
  LK_SCOPED_KEY_INPUT_INVALID: {
    status: 400,
    expose: true,
    message: 'The scoped key inputs are unusable (identifier, key lengths, rotation secret or 13-digit timestamp).',
  },
  LK_KEYS_JWK_MALFORMED: {
    status: 400,
    expose: true,
    message: 'keys_jwk must be unpadded base64url of a JSON object, at most 1,024 characters.',
  },
  LK_KEYS_JWK_UNSUPPORTED: {
    status: 400,
    expose: true,
    message: 'keys_jwk must be an EC P-256 public key for ECDH-ES with only the usual JWK members.',
  },
  LK_KEYS_JWK_PRIVATE: {
    status: 400,
    expose: true,
    message: 'keys_jwk carries private or secret key material; send the public key only.',
  },
  LK_KEYS_JWK_BAD_POINT: {
    status: 400,
    expose: true,
    message: 'keys_jwk x and y must be 32-byte base64url coordinates of a point on P-256.',
  },
  LK_KEYS_JWE_TOO_LARGE: {
    status: 400,
    expose: true,
    message: 'keys_jwe is longer than 1,024 characters; request fewer key-bearing scopes at once.',
  },
  LK_KEYS_JWE_MALFORMED: {
    status: 400,
    expose: true,
    message: 'keys_jwe must be a compact JWE with alg ECDH-ES, enc A256GCM and an empty encrypted key.',
  },
  LK_KEYS_JWE_DECRYPT_FAILED: {
    status: 400,
    expose: true,
    message: 'keys_jwe does not decrypt with this key pair (another flow, or tampered with).',
  },
  LK_SCOPED_KEYS_BUNDLE_INVALID: {
    status: 400,
    expose: true,
    message: 'The decrypted scoped keys are not the keys of the scopes asked for.',
  },

  // The transparency log (issue 10): RFC 6962 proofs and the C2SP note, checkpoint, cosignature, tiles
  // and witness formats, in core/src/transparency-log. Raised by the SDK on what a server showed it, by
  // the server's witness on what a log sent it; 502 where the data came from the server itself.
  LK_REGISTRY_BAD_PROOF: {
    status: 502,
    expose: true,
    message:
      'A Merkle proof from the log does not verify (wrong length, wrong sizes or wrong hashes): the log ' +
      'cannot show that this entry or this history is in the tree it signed. Nothing was acted on.',
  },
  LK_REGISTRY_FORK: {
    status: 502,
    expose: true,
    message:
      'The log signed two different trees of the same size: proof that it shows different histories to ' +
      'different clients. Keep both checkpoints as evidence; nothing was acted on.',
  },
  LK_REGISTRY_ROLLBACK: {
    status: 502,
    expose: true,
    message:
      'The log shows a tree smaller than one this client already verified: it rolled its history back. ' +
      'Nothing was acted on.',
  },
  LK_LOG_NOTE_MALFORMED: {
    status: 400,
    expose: true,
    message:
      'Not a well-formed signed note (c2sp.org/signed-note): text ending in a newline, a blank line, then ' +
      'at most 100 lines "— <name> <base64>", in UTF-8 without control characters.',
  },
  LK_LOG_NOTE_BAD_SIGNATURE: {
    status: 403,
    expose: true,
    message: 'A note signature from a known key does not verify: the note was altered or forged.',
  },
  LK_LOG_NOTE_UNVERIFIED: {
    status: 403,
    expose: true,
    message: 'No signature on the note is from a key this client trusts, so it cannot be believed.',
  },
  LK_LOG_KEY_INVALID: {
    status: 400,
    expose: true,
    message:
      'Not a usable note key: a verifier key is "<name>+<8 hex id>+<base64(type || key)>", a signer key ' +
      '"PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>", and the id must match the name and key.',
  },
  LK_LOG_CHECKPOINT_MALFORMED: {
    status: 400,
    expose: true,
    message:
      'Not a well-formed checkpoint (c2sp.org/tlog-checkpoint): origin line, tree size in decimal without ' +
      'leading zeros, base64 of a 32-byte root hash, then only non-empty extension lines.',
  },
  LK_LOG_ORIGIN_MISMATCH: {
    status: 400,
    expose: true,
    message: 'The checkpoint is for another log (its origin line is not the one expected).',
  },
  LK_LOG_COSIGNATURE_INVALID: {
    status: 400,
    expose: true,
    message:
      'Not a valid tlog-cosignature/v1: after its 4-byte key id come an 8-byte big-endian time (below 2^53 ' +
      'here; a witness never signs time 0) and a 64-byte Ed25519 signature.',
  },
  LK_LOG_WITNESS_POLICY_UNMET: {
    status: 502,
    expose: true,
    message:
      'The checkpoint lacks enough recent cosignatures from the witnesses this client requires, so nobody ' +
      'independent vouches that others see the same log. Nothing was acted on.',
  },
  LK_LOG_TILE_MALFORMED: {
    status: 400,
    expose: true,
    message:
      'Not a well-formed log tile (c2sp.org/tlog-tiles): a bad tile path, a hash tile whose length is not ' +
      '32 bytes per hash of its width, or an entry bundle with a truncated or missing entry.',
  },
  LK_LOG_WITNESS_REQUEST_MALFORMED: {
    status: 400,
    expose: true,
    message:
      'Not a well-formed add-checkpoint body (c2sp.org/tlog-witness): "old <size>", at most 63 base64 ' +
      'hashes, an empty line, then a signed checkpoint, every line ending in a newline.',
  },
  LK_LOG_WITNESS_UNKNOWN_LOG: {
    status: 404,
    expose: true,
    message:
      "This witness does not witness that log: the checkpoint's origin line names no log it was configured " +
      'with (latchkey witness serve --log <vkey>).',
  },
  LK_LOG_WITNESS_OLD_SIZE_TOO_LARGE: {
    status: 400,
    expose: true,
    message: 'The add-checkpoint "old" size is larger than the size of the checkpoint submitted.',
  },
  LK_LOG_WITNESS_CONFLICT: {
    status: 409,
    expose: true,
    message:
      'The witness last cosigned another tree size than the "old" size sent; the 409 body names it ' +
      '(text/x.tlog.size). Send the consistency proof from that size.',
  },
  LK_LOG_WITNESS_INCONSISTENT: {
    status: 422,
    expose: true,
    message:
      'The checkpoint is not a consistent extension of the tree this witness last cosigned: the proof ' +
      'does not verify, a proof came with old 0, or the same size has another root. The witness refuses ' +
      'to cosign it.',
  },
  LK_LOG_RANGE_INVALID: {
    status: 400,
    expose: true,
    message:
      'The tree size, leaf index or hash asked for is out of range for this log (sizes and indexes are ' +
      'whole numbers below 2^53, indexes below the size, hashes 32 bytes).',
  },
  // The device registry's per-account chain (issue 10; packages/core/src/registry). The server refuses
  // an append with these; a client that reads a chain which breaks a rule refuses to act on it.
  LK_REGISTRY_BAD_LINK: {
    status: 400,
    expose: true,
    message:
      'A registry link is malformed: not RFC 8785 canonical JSON, or a field is missing, unknown, of the ' +
      'wrong type or size (byte fields are canonical unpadded base64url, numbers are safe integers).',
  },
  LK_REGISTRY_UNKNOWN_VERSION: {
    status: 400,
    expose: true,
    message: 'A registry link has a version this software does not know; update it before trusting this chain.',
  },
  LK_REGISTRY_BAD_SIGNATURE: {
    status: 400,
    expose: true,
    message: 'A signature on a registry link does not verify: the link was altered after it was signed, or forged.',
  },
  LK_REGISTRY_NOT_PRIMARY: {
    status: 403,
    expose: true,
    message:
      "This registry link needs the signature of the account's current primary device (a tombstone: the " +
      "primary's or the identity key's), and it does not carry one.",
  },
  LK_REGISTRY_NOT_IDENTITY: {
    status: 403,
    expose: true,
    message: "This register-primary link is not signed by the account's identity key.",
  },
  LK_REGISTRY_MISSING_COUNTERSIGNATURE: {
    status: 400,
    expose: true,
    message:
      'A device that becomes primary must countersign the link that names it (register-primary, ' +
      'transfer-primary), proving it holds its key; this link lacks that signature.',
  },
  LK_REGISTRY_WRONG_ACCOUNT: {
    status: 400,
    expose: true,
    message: "A registry link names another account than this chain's.",
  },
  LK_REGISTRY_NOT_REGISTERED: {
    status: 409,
    expose: true,
    message: "This account's registry is empty: its first link must be a register-primary.",
  },
  LK_REGISTRY_ALREADY_REGISTERED: {
    status: 409,
    expose: true,
    message: 'This account already has a primary device; only a transfer-primary signed by it can change that.',
  },
  LK_REGISTRY_OUT_OF_ORDER: {
    status: 409,
    expose: true,
    message: "A registry link's seq is not one more than the previous link's: a link is missing from the chain.",
  },
  LK_REGISTRY_PREV_MISMATCH: {
    status: 409,
    expose: true,
    message: "A registry link's prev is not the hash of the link before it: the chain was rewritten or forked.",
  },
  LK_REGISTRY_REPLAYED: {
    status: 409,
    expose: true,
    message: 'This registry link repeats a seq the chain already has: a replayed or stale link.',
  },
  LK_REGISTRY_BAD_TIME: {
    status: 400,
    expose: true,
    message: "A registry link's time is earlier than the previous link's, or too far in the future.",
  },
  LK_REGISTRY_STALE_SEEN: {
    status: 409,
    expose: true,
    message:
      "A registry link's seen checkpoint is no larger than the previous link's, so its signer cannot have " +
      'verified the link it follows; fetch and verify the latest checkpoint, then sign again.',
  },
  LK_REGISTRY_STALE_EPOCH: {
    status: 409,
    expose: true,
    message: "A group-key declaration's epoch is not greater than the current one: an old or replayed group key.",
  },
  LK_REGISTRY_TOMBSTONED: {
    status: 410,
    expose: true,
    message: 'This account was tombstoned (destroyed): its registry is final and takes no more links.',
  },
  LK_LOG_TILE_NOT_FOUND: {
    status: 404,
    expose: true,
    message:
      'The log has no such tile or entry bundle yet: it lies beyond the newest checkpoint. Fetch the ' +
      'checkpoint first and ask only for the tiles its size needs (c2sp.org/tlog-tiles).',
  },
  LK_LOG_ENTRY_TOO_LARGE: {
    status: 400,
    expose: true,
    message:
      'A transparency log entry is at most 65,535 bytes: entry bundles write each length as a uint16 ' +
      '(c2sp.org/tlog-tiles).',
  },
} as const satisfies Record<string, { status: number; expose: boolean; message: string }>;

/** A stable error code, `LK_*`. */
export type ErrorCode = keyof typeof ERRORS;

/** The JSON body of every error the server answers with. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** Extra machine-readable facts (for example `retryAfterSeconds`). */
  details?: Record<string, unknown>;
}

/** An error with a stable code, thrown by core, the server and the SDK alike. */
export class LatchkeyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ERRORS[code].message);
    this.name = 'LatchkeyError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** True when `code` names an entry of the registry. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}
