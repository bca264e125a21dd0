import { LatchkeyError, type TrustedLog } from '@latchkey/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { installErrorHandling } from '../http-errors.js';
import { trustedLogs, Witness } from './witness.js';
import { loadOrCreateWitnessKey, type WitnessKey } from './witness-key.js';
import { WitnessStateStore } from './witness-state.js';

/** How a witness is set up: where it keeps its key and state, its name, and the logs it witnesses. */
export interface WitnessOptions {
  /** Its key (`witness.key`, 0600) and state (`witness.db`); made 0700 if missing. */
  dataDir: string;
  /** The witness's name, needed on the first start (it goes into the key); later it must match. */
  name?: string;
  /** The note vkeys of the logs it witnesses; each log's origin is its key's name. */
  logs: readonly string[];
  /** Fastify's logger option (default: pino at `logLevel` to `logStream`). */
  logger?: boolean | object;
  logStream?: { write(line: string): void };
  logLevel?: string;
  /** The clock, in milliseconds (cosignatures are dated by it). */
  now?: () => number;
}

/** A witness ready to listen: the Fastify app, its key and the logs it witnesses. */
export interface WitnessServer {
  app: FastifyInstance;
  key: WitnessKey;
  logs: readonly TrustedLog[];
}

/** An add-checkpoint body is at most 63 proof lines and a checkpoint with its signatures: far below this. */
const BODY_LIMIT_BYTES = 64 * 1024;

/**
 * Builds a C2SP tlog-witness server (its own app, apart from the Latchkey API): `POST /add-checkpoint`
 * answers 200 with a tlog-cosignature line, 409 with the size it holds (`text/x.tlog.size`), or
 * 400/403/404/422 with `{code, message}`. Throws `LK_CONFIG_INVALID` for an unusable key or data
 * directory and `LK_LOG_KEY_INVALID` for a log vkey it cannot parse.
 */
export async function buildWitnessApp(options: WitnessOptions): Promise<WitnessServer> {
  const logs = trustedLogs(options.logs);
  if (logs.length === 0) {
    throw new LatchkeyError('LK_CONFIG_INVALID', 'A witness needs at least one log to witness (--log <vkey>).');
  }
  const key = loadOrCreateWitnessKey(options.dataDir, options.name);
  const store = new WitnessStateStore(options.dataDir);
  const witness = new Witness(key, logs, store, options.now);

  const app = Fastify({
    logger: options.logger ?? {
      level: options.logLevel ?? 'info',
      ...(options.logStream === undefined ? {} : { stream: options.logStream }),
    },
    bodyLimit: BODY_LIMIT_BYTES,
  });
  app.addHook('onClose', async () => store.close());
  installErrorHandling(app);
  // tlog-witness names no media type for the body, so every type (or none) is read as raw bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post('/add-checkpoint', async (request, reply) => {
    const body = request.body instanceof Uint8Array ? request.body : new Uint8Array();
    const decision = witness.addCheckpoint(body);
    void reply.status(decision.status);
    if (decision.status === 200) return reply.type('text/plain; charset=utf-8').send(decision.body);
    if (decision.status === 409) return reply.type(decision.contentType).send(decision.body);
    // A signed checkpoint the witness will not cosign may be evidence that the log misbehaved.
    if (decision.status === 422) request.log.warn({ code: decision.code, reason: decision.reason }, 'refused');
    return reply.type('application/json; charset=utf-8').send({ code: decision.code, message: decision.reason });
  });

  return { app, key, logs };
}
