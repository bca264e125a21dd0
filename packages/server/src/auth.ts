import { fromBase64Url, LatchkeyError } from '@latchkey/core';
import type { FastifyRequest } from 'fastify';
import type { ServerContext } from './context.js';
import { type AuthenticatedSession, authenticate } from './modules/accounts/service.js';

declare module 'fastify' {
  interface FastifyRequest {
    auth: AuthenticatedSession | null;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9_-]{43})$/;

/** A preHandler that admits only requests with a live session token (`Authorization: Bearer …`). */
export function sessionGuard(ctx: ServerContext) {
  return async (request: FastifyRequest): Promise<void> => {
    const match = BEARER.exec(request.headers.authorization ?? '');
    if (match === null) throw new LatchkeyError('LK_UNAUTHORIZED');
    // 43 characters can still be non-canonical (nonzero trailing bits): no session has such a token.
    let token: Uint8Array;
    try {
      token = fromBase64Url(match[1] as string, 'token');
    } catch {
      throw new LatchkeyError('LK_UNAUTHORIZED');
    }
    request.auth = await authenticate(ctx, token);
  };
}

/** The session a guarded handler runs under. */
export function authOf(request: FastifyRequest): AuthenticatedSession {
  if (request.auth === null) throw new LatchkeyError('LK_UNAUTHORIZED');
  return request.auth;
}
