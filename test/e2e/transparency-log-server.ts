import { fromBase64Url } from '@latchkey/core';
import type { ServerContext } from '@latchkey/server';
import type { FastifyPluginAsync } from 'fastify';
import { serveOverIpc } from '../support/server-process.js';

/**
 * A server process for test/e2e/transparency-log-nodes.test.ts: the real server, plus a test-only
 * route that appends to its transparency log (the registry, which appends in production, comes later)
 * and answers once the log acknowledged the entry, as the registry will. On the message
 * `die-mid-batch` it kills itself with SIGKILL inside the next batch's transaction, after the batch's
 * writes and before its commit: the worst moment a crash can come.
 */
let dieMidBatch = false;

const appendRoute: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { store } = ctx;
  const transaction = store.transaction.bind(store);
  store.transaction = (work) =>
    transaction(async (tx) => {
      const result = await work(tx);
      if (dieMidBatch) {
        process.kill(process.pid, 'SIGKILL');
        await new Promise(() => {});
      }
      return result;
    });
  app.post('/test/log/append', async (request) => {
    const { entry } = request.body as { entry: string };
    return ctx.transparencyLog.append(fromBase64Url(entry));
  });
};

await serveOverIpc({
  extraPlugins: [appendRoute as unknown as FastifyPluginAsync],
  onMessage(message, reply) {
    if (message.type !== 'die-mid-batch') return;
    dieMidBatch = true;
    reply({ type: 'armed' });
  },
});
