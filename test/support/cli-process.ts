import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { TEST_KEY_STRETCHING_SPEC } from './server.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI's entry, run through tsx as `npm run latchkey` does. */
export const MAIN = join(ROOT, 'packages/cli/src/main.ts');
/** The installed `latchkey` launcher. */
export const BIN = join(ROOT, 'packages/cli/bin/latchkey.js');
/** Every spawned command is killed after this long, so a hung prompt fails the test instead of the run. */
const RUN_LIMIT_MS = 30_000;

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running CLI process: its output so far, stdin to type into, and its end. */
export interface Running {
  child: ChildProcessWithoutNullStreams;
  output(): { stdout: string; stderr: string };
  /** Waits until stdout+stderr contain `text` (bounded). */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  done: Promise<Finished>;
}

/** The body of a `--json` failure. */
export interface ErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * Spawns `command` in the repository root, without the caller's LATCHKEY_SERVER or LATCHKEY_SESSION,
 * killed after a bound.
 */
export function start(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Running {
  const { LATCHKEY_SERVER: _server, LATCHKEY_SESSION: _session, ...inherited } = process.env;
  const child = spawn(command, [...args], { cwd: ROOT, env: { ...inherited, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const limit = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
  const done = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr });
    });
  });
  async function waitFor(text: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(stdout + stderr).includes(text)) {
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`no ${JSON.stringify(text)} in the output: ${JSON.stringify(stdout + stderr)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return { child, output: () => ({ stdout, stderr }), waitFor, done };
}

/**
 * The CLI as `npm run latchkey` runs it, with `home` as its LATCHKEY_HOME (and `env` besides). Its
 * client commands expect the test servers' cheap key stretching (LATCHKEY_KEY_STRETCHING pins it),
 * unless `env` says otherwise.
 */
export function startCli(args: readonly string[], home: string, env: NodeJS.ProcessEnv = {}): Running {
  return start(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    LATCHKEY_KEY_STRETCHING: TEST_KEY_STRETCHING_SPEC,
    ...env,
    LATCHKEY_HOME: home,
  });
}

/** Runs one command with `stdin` piped in (then closed) and returns how it ended. */
export async function cli(
  args: readonly string[],
  home: string,
  stdin = '',
  env: NodeJS.ProcessEnv = {},
): Promise<Finished> {
  const running = startCli(args, home, env);
  running.child.stdin.end(stdin);
  return running.done;
}

/** A `--json` command that must succeed: its one JSON document. Under --json stderr stays empty. */
export async function cliJson(
  args: readonly string[],
  home: string,
  stdin = '',
  env: NodeJS.ProcessEnv = {},
): Promise<Record<string, unknown>> {
  const result = await cli([...args, '--json'], home, stdin, env);
  expect(result.code, result.stdout + result.stderr).toBe(0);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

/** A `--json` command that must fail with exit status 1: its error body. */
export async function cliError(
  args: readonly string[],
  home: string,
  stdin = '',
  env: NodeJS.ProcessEnv = {},
): Promise<ErrorBody> {
  const result = await cli([...args, '--json'], home, stdin, env);
  expect(result.code, result.stdout + result.stderr).toBe(1);
  const body = JSON.parse(result.stdout) as { error: ErrorBody };
  expect(typeof body.error.message).toBe('string');
  return body.error;
}

/** Answers for the prompts, one per line, as `--password-stdin` and piped stdin read them. */
export const lines = (...answers: string[]) => answers.map((a) => `${a}\n`).join('');

/**
 * `latchkey serve` on 127.0.0.1:`port` over the data folder `data` (its SQLite file and master key),
 * with the tests' cheap key stretching: the argv to run it with node, and the environment that keeps
 * its home beside the data and its mail in the log (an empty LATCHKEY_SMTP_URL counts as unset).
 */
export function serveCommand(
  data: string,
  port: number,
  extraArgs: readonly string[] = [],
): { argv: string[]; env: NodeJS.ProcessEnv } {
  const argv = ['--import', 'tsx', MAIN, 'serve', '--host', '127.0.0.1', '--port', String(port)];
  argv.push('--db', `sqlite:${join(data, 'latchkey.db')}`, '--master-key', join(data, 'master.key'));
  argv.push('--key-stretching', 'argon2id:m=1024,t=1,p=1', ...extraArgs);
  return { argv, env: { LATCHKEY_HOME: join(data, '..', 'home'), LATCHKEY_SMTP_URL: '' } };
}
