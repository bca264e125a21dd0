import { type Static, Type } from '@sinclair/typebox';

/** Unpadded base64url bytes, bounded so no field can carry an oversized payload. */
export const Bytes = (maxChars: number, description: string) =>
  Type.String({ pattern: '^[A-Za-z0-9_-]*$', minLength: 1, maxLength: maxChars, description });

export const Email = Type.String({ minLength: 3, maxLength: 254, description: 'Email address.' });

export const Timestamp = Type.Integer({ minimum: 0, description: 'Milliseconds since the Unix epoch.' });

export const ErrorResponse = Type.Object(
  {
    code: Type.String({ pattern: '^LK_[A-Z0-9_]+$' }),
    message: Type.String(),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { $id: 'Error', description: 'Every error: a stable LK_* code and a human message.' },
);

export const Empty = Type.Object({}, { additionalProperties: false });

/** OPAQUE protocol messages as @serenity-kit/opaque encodes them (base64url). */
export const OpaqueMessage = (description: string) => Bytes(2048, description);

export type ErrorResponseBody = Static<typeof ErrorResponse>;
