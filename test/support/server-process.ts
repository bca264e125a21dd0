import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp, DEFAULTS, type Mailer, type ServerConfig } from '@latchkey/server';
import type { FastifyPluginAsync } from 'fastify';
import { TEST_KEY_STRETCHING } from './server.js';

/**
 * The real server in a child process of its own, for what an in-process server cannot show: its CPU
 * time apart from the load generator's (bench/), and a crash that no handler sees (SIGKILL, in
 * test/e2e/backup-crash.test.ts). Parent and child talk over Node's IPC channel: the child reports its
 * URL and every mail it sends, and stops on `stop`; a script may add messages of its own
 * ({@link serveOverIpc}'s `onMessage`, {@link ServerProcess.ask}).
 */

/** Any message on the IPC channel (JSON-serialisable); each kind is told apart by `type`. */
export type Message = { type: string } & Record<string, unknown>;

/** Server process → parent, whatever the script. */
export type ServerProcessMessage = { type: 'ready'; url: string } | { type: 'mail'; to: string; text: string };

/** The part of the configuration a parent may set; it crosses the process boundary as JSON. */
export type ServerProcessConfig = Partial<
  Pick<
    ServerConfig,
    'databaseUrl' | 'masterKeyFile' | 'port' | 'logLevel' | 'keyStretching' | 'rateLimits' | 'publicUrl'
  >
>;

export interface ServerProcessOptions {
  /**
   * The child's configuration over its defaults (a fresh SQLite file and master key in a directory the
   * child removes when it stops). To restart a server on the same data, give both `databaseUrl` and
   * `masterKeyFile`. The host is always 127.0.0.1.
   */
  config?: ServerProcessConfig;
  /** The script to run; it must call {@link serveOverIpc}. Defaults to ./server-process-main.ts. */
  script?: string;
  /** Extra Node flags for the child (before tsx's loader). */
  nodeFlags?: readonly string[];
}

/** How a process ended: an exit code, or the signal that ended it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The pid of the Node process that runs the server itself (no shell or wrapper in between). */
  readonly pid: number;
  /** Settles when the process has exited, however it ended. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `request` and waits, bounded, for the next message of type `type` (a script's own reply). */
  ask<R extends Message>(request: Message, type: R['type'], timeoutMs?: number): Promise<R>;
  /** The last one-time code mailed to `email` (waits for it, bounded). */
  codeFor(email: string): Promise<string>;
  /** Sends `signal` now (synchronously) and answers how the process ended. */
  kill(signal: NodeJS.Signals): Promise<ExitStatus>;
  /** Closes the server cleanly (SIGKILL if it has not exited in time); safe to call when it is gone. */
  stop(): Promise<ExitStatus>;
}

/** The environment variable that carries {@link ServerProcessOptions.config} to the child. */
const CONFIG_ENV = 'LATCHKEY_SERVER_PROCESS_CONFIG';
const DEFAULT_SCRIPT = fileURLToPath(new URL('./server-process-main.ts', import.meta.url));
/** The repository root, so `--import tsx` resolves from our node_modules whatever the caller's cwd. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const REPLY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const CODE_POLLS = 100;
const CODE_POLL_MS = 20;

/**
 * Starts a server in a child Node process (TypeScript through tsx's loader, so the child's pid is the
 * server itself) and waits until it listens.
 */
export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [...(options.nodeFlags ?? []), '--import', 'tsx', options.script ?? DEFAULT_SCRIPT],
    {
      cwd: ROOT,
      env: { ...process.env, [CONFIG_ENV]: JSON.stringify(options.config ?? {}) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const mail = new Map<string, string>();
  child.on('message', (message: Message) => {
    if (isMail(message)) {
      const code = /\b(\d{8})\b/.exec(message.text)?.[1];
      if (code !== undefined) mail.set(message.to, code);
    }
  });
  let url: string;
  try {
    ({ url } = await nextMessage<Extract<ServerProcessMessage, { type: 'ready' }>>(child, 'ready', START_TIMEOUT_MS));
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('server process has no pid');

  const kill = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    url,
    pid,
    exited,
    ask<R extends Message>(request: Message, type: R['type'], timeoutMs = REPLY_TIMEOUT_MS) {
      const reply = nextMessage<R>(child, type, timeoutMs);
      child.send(request);
      return reply;
    },
    async codeFor(email) {
      for (let poll = 0; poll < CODE_POLLS; poll++) {
        const code = mail.get(email);
        if (code !== undefined) return code;
        await new Promise((resolve) => setTimeout(resolve, CODE_POLL_MS));
      }
      throw new Error(`no code was mailed to ${email}`);
    },
    kill,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || !child.connected) return kill('SIGKILL');
      const timer = setTimeout(() => void kill('SIGKILL'), STOP_TIMEOUT_MS);
      child.send({ type: 'stop' } satisfies Message);
      const status = await exited;
      clearTimeout(timer);
      return status;
    },
  };
}

function isMail(message: Message): message is Extract<ServerProcessMessage, { type: 'mail' }> {
  return message.type === 'mail';
}

function nextMessage<R extends Message>(child: ChildProcess, type: R['type'], timeoutMs: number): Promise<R> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new Error(`server process: no '${type}' message in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (message: Message) => {
      if (message.type === type) finish(undefined, message as R);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      finish(new Error(`server process exited (code ${code}, signal ${signal}) before its '${type}' message`));
    function finish(error?: Error, message?: R) {
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

export interface ServeOptions {
  /** This script's configuration (say, a bench's generous rate limits); the parent's config wins over it. */
  config?: ServerProcessConfig;
  /** Handles a message from the parent other than `stop`; `reply` sends one back. */
  onMessage?: (message: Message, reply: <M extends Message>(message: M) => void) => void;
  /** Plugins for the app (AppOptions.extraPlugins): a script's own hooks or routes. */
  extraPlugins?: readonly FastifyPluginAsync[];
}

/**
 * The child's side: builds the server from the parent's configuration, listens on 127.0.0.1, hands
 * every mail to the parent instead of SMTP, and reports `ready`. It stops on `stop`, and when the
 * parent is gone (crashed or killed) so that it never outlives it. Rate limits stay on (set them in
 * `config` when a load needs them higher); OPAQUE key stretching is cheap, as in every test.
 */
export async function serveOverIpc(options: ServeOptions = {}): Promise<void> {
  const send = process.send?.bind(process);
  if (send === undefined) throw new Error('serveOverIpc: this process was not started with an IPC channel');
  const fromParent = JSON.parse(process.env[CONFIG_ENV] ?? '{}') as ServerProcessConfig;
  const wanted: ServerProcessConfig = { ...options.config, ...fromParent };
  let scratch: string | undefined;
  const scratchFile = (name: string) => {
    scratch ??= mkdtempSync(join(tmpdir(), 'latchkey-server-process-'));
    return join(scratch, name);
  };
  const config: ServerConfig = {
    ...DEFAULTS,
    keyStretching: TEST_KEY_STRETCHING,
    logLevel: 'warn',
    ...wanted,
    host: '127.0.0.1',
    port: wanted.port ?? 0,
    databaseUrl: wanted.databaseUrl ?? `sqlite:${scratchFile('latchkey.db')}`,
    masterKeyFile: wanted.masterKeyFile ?? scratchFile('master.key'),
  };
  const mailer: Mailer = {
    async send(message) {
      send({ type: 'mail', to: message.to, text: message.text } satisfies ServerProcessMessage);
    },
    close() {},
  };
  const app = await buildApp({
    config,
    mailer,
    ...(options.extraPlugins ? { extraPlugins: options.extraPlugins } : {}),
  });
  const url = await app.listen({ host: config.host, port: config.port });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await app.close();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('message', (message: Message) => {
    if (message.type === 'stop') void stop();
    else options.onMessage?.(message, (reply) => send(reply));
  });
  process.on('disconnect', () => void stop());
  send({ type: 'ready', url } satisfies ServerProcessMessage);
}
