import { LatchkeyError } from '@latchkey/core';
import { ProgressDisplay, progressMode } from './progress.js';

/** Exit status: 0 done, 1 a LatchkeyError, 2 a usage error, 130 interrupted (Ctrl-C, as shells count it). */
export const EXIT = { ok: 0, error: 1, usage: 2, interrupted: 130 } as const;

interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Where a command's words go. The result goes to stdout: one JSON document under `--json`, text
 * otherwise. Notes for people (progress, hints) and prompts go to stderr, so stdout stays parseable.
 */
export class Output {
  constructor(
    readonly json: boolean,
    private readonly streams: Streams = { stdout: process.stdout, stderr: process.stderr },
  ) {}

  /** Prints the command's result: `data` as JSON under `--json`, else the `human` text. */
  result(data: object, human: string): void {
    this.streams.stdout.write(this.json ? `${JSON.stringify(data)}\n` : `${human}\n`);
  }

  /** A line for people (never part of the result). */
  note(text: string): void {
    this.streams.stderr.write(`${text}\n`);
  }

  /**
   * A line for people that a script reading `--json` does not want: left out under `--json`, where
   * stderr carries errors only (and, for `serve`, the server's log lines).
   */
  hint(text: string): void {
    if (!this.json) this.note(text);
  }

  /** A progress bar on stderr: redrawn on a terminal, a line per tenth otherwise, nothing under `--json`. */
  progress(): ProgressDisplay {
    const tty = (this.streams.stderr as Partial<NodeJS.WriteStream>).isTTY === true;
    return new ProgressDisplay(this.streams.stderr, progressMode({ json: this.json, tty }));
  }

  /**
   * Reports a failure and returns the exit status: `{"error":{code,message}}` on stdout under `--json`
   * (a script reads one document either way), else `error LK_CODE: message` on stderr.
   */
  fail(error: unknown): number {
    const failure = asLatchkeyError(error);
    if (this.json) {
      const body = failure.toBody();
      this.streams.stdout.write(`${JSON.stringify({ error: body })}\n`);
    } else {
      this.streams.stderr.write(`error ${failure.code}: ${failure.message}\n`);
    }
    return exitStatus(failure);
  }
}

/** Errors that are not ours (a bad file path, say) are reported as `LK_INTERNAL` with their message. */
export function asLatchkeyError(error: unknown): LatchkeyError {
  if (error instanceof LatchkeyError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new LatchkeyError('LK_INTERNAL', message);
}

function exitStatus(error: LatchkeyError): number {
  if (error.code === 'LK_USAGE') return EXIT.usage;
  if (error.code === 'LK_CANCELLED' && error.details?.interrupted === true) return EXIT.interrupted;
  return EXIT.error;
}

/** A timestamp (ms) as people read it, in UTC. */
export function formatTime(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, ' UTC');
}
