import { type Static, Type } from '@sinclair/typebox';
import { Bytes, Email, OpaqueMessage, Timestamp } from './common.js';

/**
 * Request and response schemas of the accounts module: the single source of the server's validation,
 * its OpenAPI document, and the SDK's types (conventions §9). Objects reject unknown fields.
 */
const strict = { additionalProperties: false } as const;

const KeyStretching = Type.Union(
  [
    Type.Literal('memory-constrained'),
    Type.Literal('rfc-recommended'),
    Type.Object(
      {
        'argon2id-custom': Type.Object(
          { memory: Type.Integer(), iterations: Type.Integer(), parallelism: Type.Integer() },
          strict,
        ),
      },
      strict,
    ),
  ],
  { description: 'The OPAQUE key-stretching function every client of this server must use.' },
);

export const ServerConfigResponse = Type.Object({ keyStretching: KeyStretching, version: Type.String() }, strict);

export const RegisterStartRequest = Type.Object(
  { email: Email, registrationRequest: OpaqueMessage('OPAQUE RegistrationRequest.') },
  strict,
);
/**
 * The credential identifier a registration start evaluated the OPRF under, sealed by the server: the
 * finish hands it back, so the record is stored under the identifier it was made with (issue 8).
 */
export const RegistrationTicket = Bytes(256, 'From the registration start; hand it back at the finish.');

export const RegisterStartResponse = Type.Object(
  { registrationResponse: OpaqueMessage('OPAQUE RegistrationResponse.'), registrationTicket: RegistrationTicket },
  strict,
);

export const WrappedKB = Bytes(128, 'kB sealed under a key derived from the OPAQUE export key.');

export const RegisterFinishRequest = Type.Object(
  {
    email: Email,
    registrationRecord: OpaqueMessage('OPAQUE RegistrationRecord.'),
    wrapKB: WrappedKB,
    registrationTicket: RegistrationTicket,
  },
  strict,
);
export const RegisterFinishResponse = Type.Object(
  { accountId: Type.String(), verificationRequired: Type.Boolean() },
  strict,
);

export const Code = Type.String({ pattern: '^[0-9]{8}$', description: 'The 8-digit code from the email.' });

/** An email and its mailed code: a reset code's trade for a reset token. */
export const EmailCodeRequest = Type.Object({ email: Email, code: Code }, strict);

export const VerifyEmailRequest = Type.Object(
  {
    email: Email,
    code: Code,
    accountId: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{22}$',
        description:
          'The account its sign-up returned: a code mailed for another sign-up of the email (one that ' +
          'replaced this one) is then refused (LK_SIGNUP_REPLACED) instead of verifying that account.',
      }),
    ),
  },
  strict,
);
export const VerifyEmailResponse = Type.Object({ verified: Type.Boolean() }, strict);

export const EmailOnlyRequest = Type.Object({ email: Email }, strict);
export const AcceptedResponse = Type.Object({ accepted: Type.Boolean() }, strict);

/** A device token: 32 random bytes the server issued at an earlier successful login (OWASP "device cookie"). */
export const DeviceToken = Type.String({
  pattern: '^[A-Za-z0-9_-]{43}$',
  description:
    'The token a successful login on this device returned: such a login passes the limits strangers can fill.',
});
export const LoginStartRequest = Type.Object(
  { email: Email, startLoginRequest: OpaqueMessage('OPAQUE KE1.'), deviceToken: Type.Optional(DeviceToken) },
  strict,
);
export const ReauthStartRequest = Type.Object({ startLoginRequest: OpaqueMessage('OPAQUE KE1.') }, strict);
export const LoginStartResponse = Type.Object(
  { loginId: Type.String({ maxLength: 64 }), loginResponse: OpaqueMessage('OPAQUE KE2.') },
  strict,
);

export const LoginFinishRequest = Type.Object(
  {
    loginId: Type.String({ minLength: 1, maxLength: 64 }),
    finishLoginRequest: OpaqueMessage('OPAQUE KE3.'),
    deviceName: Type.Optional(Type.String({ maxLength: 100 })),
  },
  strict,
);
export const ReauthFinishRequest = Type.Object(
  { loginId: Type.String({ minLength: 1, maxLength: 64 }), finishLoginRequest: OpaqueMessage('OPAQUE KE3.') },
  strict,
);

export const KeysBundle = Bytes(256, 'kA ‖ wrapKB sealed under the key this login derived.');

export const LoginFinishResponse = Type.Object(
  {
    accountId: Type.String(),
    sessionId: Type.String(),
    expiresAt: Timestamp,
    keysChangedAt: Timestamp,
    keysBundle: KeysBundle,
    /** Present it at this device's next login (it replaces any token this login presented). */
    deviceToken: DeviceToken,
  },
  strict,
);
export const ReauthFinishResponse = Type.Object(
  { authenticatedAt: Timestamp, keysChangedAt: Timestamp, keysBundle: KeysBundle },
  strict,
);

export const AccountInfoResponse = Type.Object(
  {
    accountId: Type.String(),
    email: Type.String(),
    verified: Type.Boolean(),
    createdAt: Timestamp,
    keysChangedAt: Timestamp,
    passwordChangedAt: Timestamp,
  },
  strict,
);

export const SessionInfo = Type.Object(
  {
    sessionId: Type.String(),
    deviceName: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    createdAt: Timestamp,
    lastUsedAt: Timestamp,
    authenticatedAt: Timestamp,
    expiresAt: Timestamp,
    current: Type.Boolean(),
  },
  strict,
);
export const SessionListResponse = Type.Object({ sessions: Type.Array(SessionInfo) }, strict);
export const SessionIdParams = Type.Object({ sessionId: Type.String({ minLength: 1, maxLength: 64 }) }, strict);

export const PasswordStartRequest = Type.Object(
  { registrationRequest: OpaqueMessage('OPAQUE RegistrationRequest.') },
  strict,
);
export const PasswordFinishRequest = Type.Object(
  {
    registrationRecord: OpaqueMessage('OPAQUE RegistrationRecord.'),
    wrapKB: WrappedKB,
    registrationTicket: RegistrationTicket,
  },
  strict,
);
export const PasswordFinishResponse = Type.Object({ revokedSessions: Type.Integer() }, strict);

export const ResetToken = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'From reset/verify.' });
export const ResetVerifyResponse = Type.Object({ resetToken: ResetToken, expiresAt: Timestamp }, strict);
export const ResetRegisterRequest = Type.Object(
  { resetToken: ResetToken, registrationRequest: OpaqueMessage('OPAQUE RegistrationRequest.') },
  strict,
);
export const ResetFinishRequest = Type.Object(
  {
    resetToken: ResetToken,
    registrationRecord: OpaqueMessage('OPAQUE RegistrationRecord.'),
    wrapKB: WrappedKB,
    registrationTicket: RegistrationTicket,
  },
  strict,
);
export const ResetFinishResponse = Type.Object({ keysChangedAt: Timestamp }, strict);

export type KeyStretchingConfig = Static<typeof KeyStretching>;
export type ServerConfig = Static<typeof ServerConfigResponse>;
export type RegisterStartBody = Static<typeof RegisterStartRequest>;
export type RegistrationStart = Static<typeof RegisterStartResponse>;
export type RegisterFinishBody = Static<typeof RegisterFinishRequest>;
export type LoginStartBody = Static<typeof LoginStartRequest>;
export type LoginStartResult = Static<typeof LoginStartResponse>;
export type LoginFinishBody = Static<typeof LoginFinishRequest>;
export type LoginFinishResult = Static<typeof LoginFinishResponse>;
export type ReauthFinishResult = Static<typeof ReauthFinishResponse>;
export type AccountInfo = Static<typeof AccountInfoResponse>;
export type SessionSummary = Static<typeof SessionInfo>;
