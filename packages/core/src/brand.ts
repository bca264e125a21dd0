/** Branded types keep keys and ids of different roles from being swapped by accident (conventions §7). */
export type Brand<T, Name extends string> = T & { readonly __brand: Name };

/** kB: 32 bytes made by the client at sign-up; the server never learns it. */
export type KB = Brand<Uint8Array, 'KB'>;
/** kA: 32 bytes made by the server at sign-up; survives a password reset. */
export type KA = Brand<Uint8Array, 'KA'>;
/** The OPAQUE export key of one registration (RFC 9807 §6.4.4); known to the client only. */
export type ExportKey = Brand<Uint8Array, 'ExportKey'>;
/** The OPAQUE session key of one login, known to both ends of that login. */
export type SessionKey = Brand<Uint8Array, 'SessionKey'>;
/** The server's master key, read from its key file; seals server-held secrets at rest. */
export type MasterKey = Brand<Uint8Array, 'MasterKey'>;

export type AccountId = Brand<string, 'AccountId'>;
export type SessionId = Brand<string, 'SessionId'>;
