import { ERRORS, type ErrorCode, LatchkeyError } from '@latchkey/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { lockDownBareAnswer } from './browser-policy.js';

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
    void reply.status(known.status);
    // Fastify's way for an async error handler: resolve to the payload, which it then sends.
    if (known.code === 'LK_BODY_TOO_LARGE') return drainRefusedBody(request).then(() => known.toBody());
    return reply.send(known.toBody());
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new LatchkeyError('LK_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}.`);
    return reply.status(404).send(error.toBody());
  });
}

/** A refused body is read on (and thrown away) for at most this many times the route's limit... */
const DRAIN_FACTOR = 4;
/** ...and for at most this long, so a client that stalls mid-body cannot hold the answer back. */
const DRAIN_MS = 10_000;

/**
 * Reads and discards the rest of a body refused as too large, within bounds, before the 413 goes out.
 * Fastify answers at once with `connection: close`; closing a socket that still has unread bytes makes
 * the kernel reset the connection, and a client still sending (undici's fetch, browsers) then loses
 * the answer to EPIPE or ECONNRESET, the more often the larger the body. Read to its end, the body
 * leaves nothing unread and the client reads LK_BODY_TOO_LARGE. The read is bounded in bytes
 * ({@link DRAIN_FACTOR} times the limit, so a moderately oversized body is answered readably) and in
 * time; a body declared larger than that is not read at all. A body far over the limit may still
 * see its connection cut, which is all an attacker streaming without end ever gets.
 */
function drainRefusedBody(request: FastifyRequest): Promise<void> {
  const body = request.raw;
  if (body.complete || body.destroyed) return Promise.resolve();
  const budget = DRAIN_FACTOR * request.routeOptions.bodyLimit;
  // A declared length is exact (Node's parser ends the body there); without one, Fastify has already
  // read about a limit's worth, and the budget counts from here.
  if (Number(body.headers['content-length']) > budget) return Promise.resolve();
  return new Promise((resolve) => {
    let read = 0;
    const finish = () => {
      clearTimeout(timer);
      body.off('data', onData).off('end', finish).off('error', finish).off('close', finish);
      body.pause();
      resolve();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > budget) finish();
    };
    const timer = setTimeout(finish, DRAIN_MS);
    body.on('data', onData).on('end', finish).on('error', finish).on('close', finish);
    body.resume();
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
  lockDownBareAnswer(reply);
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
