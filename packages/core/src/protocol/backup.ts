import { type Static, Type } from '@sinclair/typebox';

/**
 * Schemas of the backup and secret-storage modules: Matrix's shapes (spec "Server-side key backups",
 * "Secrets"), snake_case as on the Matrix wire so a Matrix client's JSON passes unchanged.
 */
const strict = { additionalProperties: false } as const;
const B64 = (max: number) => Type.String({ minLength: 1, maxLength: max });
/** The longest room or session id accepted, as Matrix bounds them (255). */
export const MAX_ID_LENGTH = 255;
const Id = Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH });
/**
 * The same bound for record keys: TypeBox turns a key schema into `patternProperties`, dropping
 * min/maxLength, so the bound must be a pattern (and other keys refused). An unbounded room id would
 * exceed PostgreSQL's btree row limit (a 500, not a 400).
 */
const IdKey = Type.String({ pattern: '^[\\s\\S]{1,255}$' });

// At most 9 digits: versions are stored as 32-bit integers (PostgreSQL `integer`); a longer one is no version.
export const BackupVersionId = Type.String({ pattern: '^[1-9][0-9]{0,8}$', description: 'Decimal version id.' });
export const BackupAlgorithm = Type.Literal('m.megolm_backup.v1.curve25519-aes-sha2');

/** `auth_data`: the backup public key and signatures over it; other fields are kept as sent. */
export const BackupAuthData = Type.Object(
  {
    public_key: B64(64),
    signatures: Type.Optional(
      Type.Record(Type.String({ maxLength: 255 }), Type.Record(Type.String({ maxLength: 255 }), B64(256))),
    ),
  },
  { additionalProperties: true, maxProperties: 16 },
);

export const CreateBackupVersionRequest = Type.Object(
  { algorithm: BackupAlgorithm, auth_data: BackupAuthData },
  strict,
);
export const CreateBackupVersionResponse = Type.Object({ version: BackupVersionId }, strict);
export const UpdateBackupVersionRequest = Type.Object(
  { algorithm: BackupAlgorithm, auth_data: BackupAuthData, version: Type.Optional(BackupVersionId) },
  strict,
);
export const BackupVersionInfo = Type.Object(
  {
    algorithm: BackupAlgorithm,
    auth_data: BackupAuthData,
    count: Type.Integer({ minimum: 0 }),
    etag: Type.String(),
    version: BackupVersionId,
  },
  strict,
);
export const BackupVersionParams = Type.Object({ version: BackupVersionId }, strict);

export const BackupSessionDataSchema = Type.Object(
  { ephemeral: B64(64), ciphertext: B64(65_536), mac: B64(64) },
  strict,
);
export const KeyBackupData = Type.Object(
  {
    first_message_index: Type.Integer({ minimum: 0, maximum: 4_294_967_295 }),
    forwarded_count: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    is_verified: Type.Boolean(),
    session_data: BackupSessionDataSchema,
  },
  strict,
);

/** Keys per upload request; the SDK sends batches of this size at most. */
export const MAX_BACKUP_BATCH = 1000;

export const BackupUploadRequest = Type.Object(
  {
    rooms: Type.Record(
      IdKey,
      Type.Object(
        { sessions: Type.Record(IdKey, KeyBackupData, { maxProperties: MAX_BACKUP_BATCH, ...strict }) },
        strict,
      ),
      { maxProperties: MAX_BACKUP_BATCH, ...strict },
    ),
  },
  strict,
);
export const BackupVersionQuery = Type.Object({ version: BackupVersionId }, strict);
export const BackupKeysUpdateResponse = Type.Object(
  { etag: Type.String(), count: Type.Integer({ minimum: 0 }) },
  strict,
);

/** Keys come down in pages ordered by (room_id, session_id); `cursor` is the last pair seen. */
export const MAX_BACKUP_PAGE = 5000;
export const BackupPageQuery = Type.Object(
  {
    version: BackupVersionId,
    cursor: Type.Optional(Type.String({ maxLength: 1024 })),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$' })),
  },
  strict,
);
export const BackedUpKey = Type.Object(
  {
    room_id: Id,
    session_id: Id,
    first_message_index: Type.Integer(),
    forwarded_count: Type.Integer(),
    is_verified: Type.Boolean(),
    session_data: BackupSessionDataSchema,
  },
  strict,
);
export const BackupPageResponse = Type.Object(
  {
    keys: Type.Array(BackedUpKey),
    next_cursor: Type.Union([Type.String(), Type.Null()]),
    count: Type.Integer({ minimum: 0 }),
    etag: Type.String(),
  },
  strict,
);
export const BackupKeyParams = Type.Object({ roomId: Id, sessionId: Id }, strict);
export const BackupRoomParams = Type.Object({ roomId: Id }, strict);

// ---- secret storage -----------------------------------------------------------------------------

export const SecretName = Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$', description: 'e.g. m.megolm_backup.v1' });
export const StorageKeyId = Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' });

export const EncryptedSecretSchema = Type.Object({ iv: B64(64), ciphertext: B64(8192), mac: B64(64) }, strict);
export const SecretItem = Type.Object(
  { encrypted: Type.Record(StorageKeyId, EncryptedSecretSchema, { minProperties: 1, maxProperties: 8, ...strict }) },
  strict,
);
export const SecretParams = Type.Object({ name: SecretName }, strict);

export const StorageKeyDescription = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 255 })),
    algorithm: Type.Literal('m.secret_storage.v1.aes-hmac-sha2'),
    passphrase: Type.Optional(
      Type.Object(
        {
          algorithm: Type.Literal('m.pbkdf2'),
          salt: Type.String({ minLength: 1, maxLength: 128 }),
          iterations: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
          bits: Type.Optional(Type.Integer({ minimum: 128, maximum: 512 })),
        },
        strict,
      ),
    ),
    iv: Type.Optional(B64(64)),
    mac: Type.Optional(B64(64)),
  },
  strict,
);
export const StorageKeyParams = Type.Object({ keyId: StorageKeyId }, strict);
export const DefaultStorageKey = Type.Object({ key: StorageKeyId }, strict);
export const StorageKeyList = Type.Object(
  {
    default_key: Type.Union([StorageKeyId, Type.Null()]),
    keys: Type.Record(StorageKeyId, StorageKeyDescription),
  },
  strict,
);

export type BackupAuthDataBody = Static<typeof BackupAuthData>;
export type BackupVersionInfoBody = Static<typeof BackupVersionInfo>;
export type KeyBackupDataBody = Static<typeof KeyBackupData>;
export type BackupUploadBody = Static<typeof BackupUploadRequest>;
export type BackupPage = Static<typeof BackupPageResponse>;
export type BackedUpKeyBody = Static<typeof BackedUpKey>;
export type SecretItemBody = Static<typeof SecretItem>;
export type StorageKeyDescriptionBody = Static<typeof StorageKeyDescription>;
export type StorageKeyListBody = Static<typeof StorageKeyList>;
