import type { FastifyPluginAsync } from 'fastify';
import { type Message, serveOverIpc } from './server-process.js';

/**
 * A server that kills itself (SIGKILL: no handler, no graceful close) at a chosen point of a chosen
 * backup upload, for test/e2e/backup-crash.test.ts. The parent arms it with
 * `{ type: 'die-on-upload', nth, at }` and gets `{ type: 'armed' }` back:
 * - `at: 'before-write'`: when the nth `PUT /v1/backup/keys` has arrived whole, before its handler runs;
 * - `at: 'after-commit'`: once its handler has committed the batch, before the reply leaves.
 */

export type DiePoint = 'before-write' | 'after-commit';

let armed: { nth: number; at: DiePoint } | undefined;
let uploads = 0;

const die = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL cannot be caught');
};

const isUpload = (method: string, url: string) => method === 'PUT' && url.startsWith('/v1/backup/keys?');

const dieOnUpload: FastifyPluginAsync = async (app) => {
  app.addHook('preHandler', async (request) => {
    if (armed === undefined || !isUpload(request.method, request.url)) return;
    uploads++;
    if (uploads === armed.nth && armed.at === 'before-write') die();
  });
  app.addHook('onSend', async (request, reply, payload) => {
    if (armed?.at === 'after-commit' && isUpload(request.method, request.url) && uploads === armed.nth) {
      if (reply.statusCode === 200) die();
    }
    return payload;
  });
};
// Not encapsulated: the hooks apply to every route, not only to routes of this plugin.
Object.assign(dieOnUpload, { [Symbol.for('skip-override')]: true });

await serveOverIpc({
  extraPlugins: [dieOnUpload],
  onMessage(message: Message, reply) {
    if (message.type !== 'die-on-upload') return;
    armed = { nth: Number(message.nth), at: message.at as DiePoint };
    uploads = 0;
    reply({ type: 'armed' });
  },
});
