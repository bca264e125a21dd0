import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Parent → server process. */
export type ParentMessage = { type: 'cpu' } | { type: 'profile'; action: 'start' | 'stop' } | { type: 'stop' };

/** Server process → parent. */
export type ChildMessage =
  | { type: 'ready'; url: string }
  | { type: 'mail'; to: string; text: string }
  | { type: 'cpu'; usage: NodeJS.CpuUsage }
  | { type: 'profile'; file: string | null };

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
const START_TIMEOUT_MS = 30_000;
const REPLY_TIMEOUT_MS = 10_000;

/**
 * Starts {@link ./server-process.ts} in a child Node process (TypeScript through tsx's loader, so the
 * child's pid is the server itself).
 */
export async function startBenchServer(): Promise<BenchServer> {
  const child = spawn(
    process.execPath,
    [...(process.env.V_NODE_FLAGS ? process.env.V_NODE_FLAGS.split(' ') : []), '--import', 'tsx', SCRIPT],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const mail = new Map<string, string>();
  child.on('message', (message: ChildMessage) => {
    if (message.type === 'mail') {
      const code = /\b(\d{8})\b/.exec(message.text)?.[1];
      if (code !== undefined) mail.set(message.to, code);
    }
  });
  const { url } = await nextMessage(child, 'ready', START_TIMEOUT_MS);
  const pid = child.pid;
  if (pid === undefined) throw new Error('server process has no pid');
  return {
    url,
    pid,
    async cpuMs() {
      const reply = nextMessage(child, 'cpu', REPLY_TIMEOUT_MS);
      child.send({ type: 'cpu' } satisfies ParentMessage);
      const { usage } = await reply;
      return (usage.user + usage.system) / 1000;
    },
    async profile(action) {
      if (!process.env.LATCHKEY_BENCH_CPU_PROF) return null;
      const reply = nextMessage(child, 'profile', REPLY_TIMEOUT_MS);
      child.send({ type: 'profile', action } satisfies ParentMessage);
      return (await reply).file;
    },
    async codeFor(email) {
      for (let tries = 0; tries < 100; tries++) {
        const code = mail.get(email);
        if (code !== undefined) return code;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`no code was mailed to ${email}`);
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'stop' } satisfies ParentMessage);
      await exited;
    },
  };
}

function nextMessage<K extends ChildMessage['type']>(
  child: ChildProcess,
  type: K,
  timeoutMs: number,
): Promise<Extract<ChildMessage, { type: K }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new Error(`server process: no '${type}' message in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (message: ChildMessage) => {
      if (message.type === type) finish(undefined, message as Extract<ChildMessage, { type: K }>);
    };
    const onExit = (code: number | null) => finish(new Error(`server process exited (code ${code})`));
    function finish(error?: Error, message?: Extract<ChildMessage, { type: K }>) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error === undefined && message !== undefined) resolve(message);
      else reject(error);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}
