import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { serveOverIpc } from '../../test/support/server-process.js';
import type { BenchRequest, CpuReply, ProfileReply } from './server-child.js';

/**
 * The real server in its own process, so its CPU time is measured apart from the load generator.
 * Spawned by {@link ../support/server-child.ts}; on top of the server process's own messages
 * (test/support/server-process.ts) it answers CPU-usage and profile requests. Rate limits stay on,
 * set high enough for the bench's one address.
 */
const GENEROUS = { max: 1_000_000, windowMs: 60_000 };

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

const inspector = new Session();
await serveOverIpc({
  config: {
    rateLimits: {
      loginPerAddress: GENEROUS,
      loginPerAccountAddress: GENEROUS,
      loginPerAccount: GENEROUS,
      loginPerDevice: GENEROUS,
      reauthPerSession: GENEROUS,
      registerPerAddress: GENEROUS,
      registerPerEmail: GENEROUS,
      codeSendsPerEmail: GENEROUS,
      codeSendsPerAddress: GENEROUS,
    },
  },
  onMessage(message, reply) {
    const request = message as BenchRequest;
    if (request.type === 'cpu') reply({ type: 'cpu', usage: process.cpuUsage() } satisfies CpuReply);
    if (request.type === 'profile') {
      void profile(request.action, inspector).then((file) => reply({ type: 'profile', file } satisfies ProfileReply));
    }
  },
});
