import { fileURLToPath } from 'node:url';
import { startServerProcess } from '../../test/support/server-process.js';

/** Bench requests, on top of the server process's own messages (test/support/server-process.ts). */
export type BenchRequest = { type: 'cpu' } | { type: 'profile'; action: 'start' | 'stop' };

/** The bench script's replies to {@link BenchRequest}. */
export type CpuReply = { type: 'cpu'; usage: NodeJS.CpuUsage };
export type ProfileReply = { type: 'profile'; file: string | null };

export interface BenchServer {
  url: string;
  pid: number;
  /** The server process's CPU time so far (user + system), in milliseconds. */
  cpuMs(): Promise<number>;
  /**
   * Starts or stops a V8 CPU profile of the server when `LATCHKEY_BENCH_CPU_PROF=<dir>` is set (a no-op
   * otherwise), so a profile covers the measured window only; `stop` answers the file it wrote.
   */
  profile(action: 'start' | 'stop'): Promise<string | null>;
  /** The last one-time code mailed to `email` (waits for it, bounded). */
  codeFor(email: string): Promise<string>;
  stop(): Promise<void>;
}

const SCRIPT = process.env.V_SCRIPT ?? fileURLToPath(new URL('./server-process.ts', import.meta.url));

/**
 * Starts {@link ./server-process.ts} in a child Node process (test/support/server-process.ts), so the
 * server's CPU time is measured apart from the load generator's.
 */
export async function startBenchServer(): Promise<BenchServer> {
  const server = await startServerProcess({
    script: SCRIPT,
    nodeFlags: process.env.V_NODE_FLAGS ? process.env.V_NODE_FLAGS.split(' ') : [],
  });
  return {
    url: server.url,
    pid: server.pid,
    async cpuMs() {
      const { usage } = await server.ask<CpuReply>({ type: 'cpu' } satisfies BenchRequest, 'cpu');
      return (usage.user + usage.system) / 1000;
    },
    async profile(action) {
      if (!process.env.LATCHKEY_BENCH_CPU_PROF) return null;
      return (await server.ask<ProfileReply>({ type: 'profile', action } satisfies BenchRequest, 'profile')).file;
    },
    codeFor: (email) => server.codeFor(email),
    async stop() {
      await server.stop();
    },
  };
}
