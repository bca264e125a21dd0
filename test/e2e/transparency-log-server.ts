import { fromBase64Url } from '@latchkey/core';
import type { ServerContext } from '@latchkey/server';
import type { FastifyPluginAsync } from 'fastify';
import { serveOverIpc } from '../support/server-process.js';

/**
 * A server process for test/e2e/transparency-log.test.ts: the real server, plus one test-only route
 * that appends to its transparency log (the registry, which appends in production, comes later). The
 * route answers only once the log acknowledged the entry, as the registry will.
 */
const appendRoute: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.post('/test/log/append', async (request) => {
    const { entry } = request.body as { entry: string };
    return ctx.transparencyLog.append(fromBase64Url(entry));
  });
};

await serveOverIpc({ extraPlugins: [appendRoute as unknown as FastifyPluginAsync] });
