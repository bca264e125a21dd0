import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, DEFAULTS, type Mailer, type ServerConfig } from '@latchkey/server';
import { TEST_KEY_STRETCHING } from '../../test/support/server.js';
import type { ChildMessage, ParentMessage } from './server-child.js';

/**
 * The real server in its own process, so its CPU time is measured apart from the load generator.
 * Spawned by {@link ../support/server-child.ts} with an IPC channel: it reports its URL and every
 * mail it sends, and answers CPU-usage requests. Rate limits stay on, set high enough for the bench's
 * one address; OPAQUE key stretching is cheap (it costs the client, never the server).
 */
const GENEROUS = { max: 1_000_000, windowMs: 60_000 };

function send(message: ChildMessage): void {
  process.send?.(message);
}

/** Hands each mailed code to the parent instead of SMTP or the log. */
const ipcMailer: Mailer = {
  async send(message) {
    send({ type: 'mail', to: message.to, text: message.text });
  },
  close() {},
};

/** A V8 CPU profile of a window of this process, written to `LATCHKEY_BENCH_CPU_PROF` (see server-child.ts). */
async function profile(action: 'start' | 'stop', inspector: Session): Promise<string | null> {
  const dir = process.env.LATCHKEY_BENCH_CPU_PROF;
  if (!dir) return null;
  if (action === 'start') {
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.start');
    return null;
  }
  const { profile: result } = await inspector.post('Profiler.stop');
  inspector.disconnect();
  const file = join(dir, `server-${process.pid}-${Date.now()}.cpuprofile`);
  writeFileSync(file, JSON.stringify(result));
  return file;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const config: ServerConfig = {
    ...DEFAULTS,
    port: 0,
    databaseUrl: `sqlite:${join(dir, 'latchkey.db')}`,
    masterKeyFile: join(dir, 'master.key'),
    keyStretching: TEST_KEY_STRETCHING,
    logLevel: 'warn',
    rateLimits: { loginPerAccount: GENEROUS, loginPerAddress: GENEROUS, codeSendsPerEmail: GENEROUS },
  };
  const app = await buildApp({ config, mailer: ipcMailer });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });

  const stop = async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  const inspector = new Session();
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'cpu') send({ type: 'cpu', usage: process.cpuUsage() });
    if (message.type === 'profile')
      void profile(message.action, inspector).then((file) => send({ type: 'profile', file }));
    if (message.type === 'stop') void stop();
  });
  // The parent is gone (crashed or killed): do not outlive it.
  process.on('disconnect', () => void stop());
  send({ type: 'ready', url });
}

await main();
