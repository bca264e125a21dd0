import { parseArgs } from 'node:util';
import { LatchkeyError } from '@latchkey/core';
import type { Output } from './output.js';
import type { Prompter } from './prompt.js';

/** One command-line option, as `node:util` parseArgs takes it plus what `--help` shows. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The placeholder `--help` shows after a string option, for example `URL`. */
  value?: string;
  /** The option may be repeated; read every value with {@link Args.strings}. */
  multiple?: boolean;
  description: string;
}

/** What a command gets to work with: its parsed arguments, the output, the prompts and the environment. */
export interface CommandContext {
  args: Args;
  out: Output;
  prompt: Prompter;
  env: NodeJS.ProcessEnv;
}

/** A leaf command such as `account login`. */
export interface Command {
  /** The words after `latchkey`, for example `account login`. */
  name: string;
  summary: string;
  /** The positional arguments as `--help` shows them, for example `[EMAIL] [CODE]`. */
  positionals?: { usage: string; max: number };
  options: Record<string, OptionSpec>;
  /** More help text, printed after the options. */
  details?: string;
  run(ctx: CommandContext): Promise<void>;
}

/** Options every command takes. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'print one JSON document on stdout (errors as {"error":{code,message}})' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

/** A usage error: exit code 2. */
export function usageError(message: string): LatchkeyError {
  return new LatchkeyError('LK_USAGE', message);
}

/** The parsed command line of one command, with typed accessors. */
export class Args {
  constructor(
    readonly positionals: readonly string[],
    private readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>,
  ) {}

  string(name: string): string | undefined {
    const value = this.values[name];
    return typeof value === 'string' ? value : undefined;
  }

  /** Every value of a repeatable string option, in command-line order. */
  strings(name: string): string[] {
    const value = this.values[name];
    if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
    return typeof value === 'string' ? [value] : [];
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** Whether the option is on the command line at all (a flag, or a string option with a value). */
  given(name: string): boolean {
    return this.values[name] !== undefined;
  }

  positional(index: number): string | undefined {
    return this.positionals[index];
  }
}

/** Parses `argv` against the command's options (strictly: unknown options are usage errors). */
export function parseCommandArgs(command: Command, argv: readonly string[]): Args {
  const options = { ...command.options, ...COMMON_OPTIONS };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (error) {
    throw usageError(`${(error as Error).message} (see latchkey ${command.name} --help)`);
  }
  const max = command.positionals?.max ?? 0;
  if (parsed.positionals.length > max) {
    throw usageError(
      `unexpected argument ${JSON.stringify(parsed.positionals[max])} (see latchkey ${command.name} --help)`,
    );
  }
  return new Args(
    parsed.positionals,
    parsed.values as Record<string, string | boolean | (string | boolean)[] | undefined>,
  );
}

/** The `--help` text of one command. */
export function commandHelp(command: Command): string {
  const usage = ['latchkey', command.name, command.positionals?.usage, '[options]'].filter(Boolean).join(' ');
  const options = optionRows({ ...command.options, ...COMMON_OPTIONS });
  const lines = [`${command.summary}`, '', `Usage: ${usage}`, '', 'Options:', ...columns(options)];
  if (command.details) lines.push('', command.details);
  return `${lines.join('\n')}\n`;
}

/** Help rows for options: `-h, --help` and `--server URL` beside their descriptions. */
export function optionRows(options: Record<string, OptionSpec>): (readonly [string, string])[] {
  return Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.value ? ` ${spec.value}` : ''}`;
    return [flag, spec.description] as const;
  });
}

/** Two aligned columns, indented. */
export function columns(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(0, ...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`);
}
