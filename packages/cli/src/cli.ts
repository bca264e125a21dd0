import { readFileSync } from 'node:fs';
import { LatchkeyError } from '@latchkey/core';
import {
  COMMON_OPTIONS,
  type Command,
  columns,
  commandHelp,
  optionRows,
  parseCommandArgs,
  usageError,
} from './command.js';
import { accountCommands } from './commands/account.js';
import { backupCommands } from './commands/backup.js';
import { keysCommands } from './commands/keys.js';
import { oauthCommands } from './commands/oauth.js';
import { recoveryCommands } from './commands/recovery.js';
import { serveCommand } from './commands/serve.js';
import { unlockCommands } from './commands/unlock.js';
import { witnessCommands } from './commands/witness.js';
import { EXIT, Output } from './output.js';
import { createPrompter } from './prompt.js';

/** Every leaf command, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [
  serveCommand,
  ...unlockCommands,
  ...accountCommands,
  ...backupCommands,
  ...recoveryCommands,
  ...keysCommands,
  ...oauthCommands,
  ...witnessCommands,
];

const GROUPS: Record<string, string> = {
  account: 'Sign up, verify, log in and out, change or reset the password, delete, list sessions',
  backup: "Back up this device's room keys, encrypted: enable, status, upload, restore, delete",
  recovery: 'Check the recovery key, or replace it with a new one',
  oauth: 'Register apps and scopes (admin, on the database); list or revoke the apps you granted',
  keys: "Export and import room keys as Matrix key export files, or clear this device's keystore",
  witness: "Run a transparency-log witness that cosigns other logs' checkpoints, or print its key",
};

/** Options that may come before the command: `latchkey --json account whoami`. */
const LEADING = new Set(['--json', '--help', '-h', '--version']);

/** The process's streams and environment, replaceable for embedding. */
export interface Io {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

const PROCESS_IO: Io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };

/**
 * Runs one command line and returns the exit status (0 done, 1 an `LK_*` error, 2 a usage error,
 * 130 interrupted). `serve` returns once listening; the server then keeps the process alive.
 */
export async function run(argv: readonly string[], io: Io = PROCESS_IO): Promise<number> {
  const out = new Output(argv.includes('--json'), io);
  try {
    return await dispatch(argv, io, out);
  } catch (error) {
    return out.fail(error);
  }
}

async function dispatch(argv: readonly string[], io: Io, out: Output): Promise<number> {
  let start = 0;
  while (start < argv.length && LEADING.has(argv[start] as string)) start++;
  const leading = argv.slice(0, start);
  const rest = argv.slice(start);
  const wantsHelp = (args: readonly string[]) => args.includes('--help') || args.includes('-h');

  const found = findCommand(rest);
  if (found !== undefined) {
    const args = [...found.args, ...leading];
    if (wantsHelp(args)) return printHelp(io, commandHelp(found.command));
    return runCommand(found.command, args, io, out);
  }
  const [first, second] = rest;
  if (first === undefined) {
    if (leading.includes('--version')) return printHelp(io, `${version()}\n`);
    if (wantsHelp(leading)) return printHelp(io, topHelp());
    if (out.json) throw usageError('no command given; see latchkey --help');
    io.stderr.write(topHelp());
    return EXIT.usage;
  }
  if (Object.hasOwn(GROUPS, first) && (second === undefined || second.startsWith('-'))) {
    if (wantsHelp(argv)) return printHelp(io, groupHelp(first));
    if (out.json) throw usageError(`${first}: which command? see latchkey ${first} --help`);
    io.stderr.write(groupHelp(first));
    return EXIT.usage;
  }
  const name = Object.hasOwn(GROUPS, first) ? `${first} ${second}` : first;
  throw usageError(`unknown command: ${name} (see latchkey --help)`);
}

/** The command named by the first words of `argv`, and the arguments after them. */
function findCommand(argv: readonly string[]): { command: Command; args: readonly string[] } | undefined {
  for (let words = 1; words <= argv.length; words++) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS.find((c) => c.name === name);
    if (command !== undefined) return { command, args: argv.slice(words) };
    if (!COMMANDS.some((c) => c.name.startsWith(`${name} `))) return undefined;
  }
  return undefined;
}

async function runCommand(command: Command, argv: readonly string[], io: Io, out: Output): Promise<number> {
  const args = parseCommandArgs(command, argv);
  const prompt = createPrompter(io.stdin, io.stderr, { linesFromStdin: args.flag('password-stdin') });
  try {
    await command.run({ args, out, prompt, env: io.env });
    return EXIT.ok;
  } catch (error) {
    throw explained(error);
  } finally {
    prompt.close();
  }
}

/**
 * The server's words for a refused token ("A valid session token is required") are for programs; at
 * the command line the token is the saved session, and the way on is to log in again.
 */
function explained(error: unknown): unknown {
  if (!(error instanceof LatchkeyError) || error.code !== 'LK_UNAUTHORIZED') return error;
  return new LatchkeyError(
    'LK_UNAUTHORIZED',
    'Your session has ended (logged out, revoked, expired, or ended by a password change); run `latchkey account login`.',
    error.details,
  );
}

function printHelp(io: Io, text: string): number {
  io.stdout.write(text);
  return EXIT.ok;
}

function topHelp(): string {
  const rows = [
    ...COMMANDS.filter((c) => !c.name.includes(' ')).map((c) => [c.name, c.summary] as const),
    ...Object.entries(GROUPS).map(([name, summary]) => [`${name} …`, summary] as const),
  ];
  return [
    'latchkey: an end-to-end-encrypted key service',
    '',
    'Usage: latchkey <command> [options]',
    '',
    'Commands:',
    ...columns(rows),
    '',
    'Every command takes:',
    ...columns(optionRows(COMMON_OPTIONS)),
    '',
    'Exit status: 0 done, 1 an LK_* error, 2 a usage error, 130 interrupted.',
    'Run `latchkey <command> --help` for its options.',
    '',
  ].join('\n');
}

function groupHelp(group: string): string {
  const rows = COMMANDS.filter((c) => c.name.startsWith(`${group} `)).map(
    (c) => [c.name.slice(group.length + 1), c.summary] as const,
  );
  return [
    `${GROUPS[group]}`,
    '',
    `Usage: latchkey ${group} <command> [options]`,
    '',
    'Commands:',
    ...columns(rows),
    '',
  ].join('\n');
}

function version(): string {
  const url = new URL('../package.json', import.meta.url);
  return `latchkey ${(JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version}`;
}
