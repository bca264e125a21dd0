import { ErrorResponse } from '@latchkey/core';
import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authOf, sessionGuard } from './auth.js';
import type { ServerContext } from './context.js';
import type { AuthenticatedSession } from './modules/accounts/service.js';

/** One route's declaration: its schemas (the OpenAPI source) and its handler. */
export interface RouteSpec<R> {
  tag: string;
  summary: string;
  body?: TSchema;
  params?: TSchema;
  querystring?: TSchema;
  reply: TSchema;
  /**
   * A larger body limit than the server default, for bulk routes. A guarded route with one checks its
   * token as the request's head arrives, before reading any of the body: a stranger's request must not
   * get that much read and parsed.
   */
  bodyLimit?: number;
  /** Needs a live session; the handler gets it as its second argument. */
  guarded?: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: the schema has validated the request; each handler names its shape.
  handler(request: any, auth: AuthenticatedSession): Promise<R>;
}

const ERRORS = { '4xx': ErrorResponse, '5xx': ErrorResponse };

/**
 * Where a guarded route checks its token. A bulk route (its own body limit) checks in onRequest, before
 * Fastify reads the body: refused, the body goes unread (Node discards it as it arrives, on a
 * connection kept alive, so a client still sending reads the 401 rather than a reset). Other routes
 * check after validation, as their small bodies cost nothing to read, and a malformed request is told
 * what is wrong with it.
 */
function guardHook(spec: RouteSpec<unknown>, guard: ReturnType<typeof sessionGuard>) {
  return spec.bodyLimit === undefined ? { preHandler: guard } : { onRequest: guard };
}

/** Registers routes from {@link RouteSpec}s so every route has a schema, error shapes and, if guarded, a session. */
export function route(app: FastifyInstance, ctx: ServerContext) {
  const guard = sessionGuard(ctx);
  const add =
    (method: 'GET' | 'POST' | 'PUT' | 'DELETE') =>
    <R>(url: string, spec: RouteSpec<R>) => {
      app.route({
        method,
        url,
        schema: {
          tags: [spec.tag],
          summary: spec.summary,
          ...(spec.body === undefined ? {} : { body: spec.body }),
          ...(spec.params === undefined ? {} : { params: spec.params }),
          ...(spec.querystring === undefined ? {} : { querystring: spec.querystring }),
          response: { 200: spec.reply, ...ERRORS },
          ...(spec.guarded ? { security: [{ bearer: [] }] } : {}),
        },
        ...(spec.guarded ? guardHook(spec, guard) : {}),
        ...(spec.bodyLimit === undefined ? {} : { bodyLimit: spec.bodyLimit }),
        handler: async (request: FastifyRequest) =>
          spec.handler(request, spec.guarded ? authOf(request) : (undefined as unknown as AuthenticatedSession)),
      });
    };
  return { get: add('GET'), post: add('POST'), put: add('PUT'), delete: add('DELETE') };
}
