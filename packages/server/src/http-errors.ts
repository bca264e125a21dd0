import { ERRORS, type ErrorCode, LatchkeyError } from '@latchkey/core';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';

/** Fastify's own error codes that are the client's fault, mapped to ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'LK_INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'LK_INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'LK_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'LK_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'LK_INVALID_JSON',
  FST_ERR_VALIDATION: 'LK_VALIDATION',
};

/**
 * Every error leaves as `{code, message}` with the registry's status. Anything not in the registry is
 * logged in full and answered with a bare `LK_INTERNAL` (oidc-provider's rule: no internals to clients).
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | LatchkeyError | Error, request, reply) => {
    const known = toLatchkeyError(error);
    if (known === undefined) {
      request.log.error({ err: error }, 'unexpected error');
      return reply.status(500).send(new LatchkeyError('LK_INTERNAL').toBody());
    }
    if (known.status >= 500) request.log.error({ err: error }, known.code);
    if (known.code === 'LK_RATE_LIMITED' && typeof known.details?.retryAfterSeconds === 'number') {
      void reply.header('retry-after', String(known.details.retryAfterSeconds));
    }
    return reply.status(known.status).send(known.toBody());
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new LatchkeyError('LK_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}.`);
    return reply.status(404).send(error.toBody());
  });
}

/**
 * Graceful shutdown: from the moment {@link FastifyInstance.close} begins, a request still reaching
 * the server (pipelined, or on a keep-alive connection not yet closed) is answered `LK_UNAVAILABLE`
 * and its connection closed, while requests already past this hook run to the end; `close()` waits
 * for them before storage closes. Fastify's `return503OnClosing` would answer in its own shape.
 * Must be installed before any other `onRequest` hook, so that nothing else runs for such a request.
 */
export function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  // preClose runs once Fastify marks itself closing and before it stops the listener.
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    const error = new LatchkeyError('LK_UNAVAILABLE');
    // Fastify's way to answer from an async hook: send, then return the reply.
    void reply.status(error.status).header('connection', 'close').send(error.toBody());
    return reply;
  });
}

/**
 * Fastify's `frameworkErrors` option: a URL that fails to decode (`/v1/sessions/%ZZ`) or a path
 * parameter over the router's length limit is answered before any route runs, so it would bypass
 * the error handler above and leave in Fastify's own shape. Both are malformed requests.
 */
export function frameworkErrors(_error: FastifyError, _request: unknown, reply: FastifyReply): void {
  const error = new LatchkeyError('LK_VALIDATION', 'The request URL is malformed.');
  void reply
    .status(error.status)
    .header('content-type', 'application/json; charset=utf-8')
    .send(JSON.stringify(error.toBody()));
}

function toLatchkeyError(error: FastifyError | LatchkeyError | Error): LatchkeyError | undefined {
  if (error instanceof LatchkeyError) return ERRORS[error.code].expose ? error : undefined;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation !== undefined) {
    const first = fastifyError.validation[0];
    const where = `${fastifyError.validationContext ?? 'body'}${first?.instancePath ?? ''}`;
    return new LatchkeyError('LK_VALIDATION', `${where} ${first?.message ?? 'is invalid'}`.trim(), {
      field: where,
      keyword: first?.keyword,
    });
  }
  const mapped = fastifyError.code === undefined ? undefined : FASTIFY_CODES[fastifyError.code];
  if (mapped !== undefined) return new LatchkeyError(mapped);
  if (fastifyError.statusCode === 405) return new LatchkeyError('LK_METHOD_NOT_ALLOWED');
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new LatchkeyError('LK_VALIDATION', 'The request is malformed.');
  }
  return undefined;
}
