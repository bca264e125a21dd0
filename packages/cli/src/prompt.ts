import { createInterface } from 'node:readline';
import { LatchkeyError } from '@latchkey/core';

/** Asks the person at the keyboard, or reads the answers from piped stdin, one line each. */
export interface Prompter {
  /** An answer shown as it is typed (an email, a code). */
  ask(question: string): Promise<string>;
  /** An answer never shown (a password). */
  secret(question: string): Promise<string>;
  /** Stops reading stdin so the process can exit. */
  close(): void;
}

/** The longest line read from piped stdin; more is a mistake, not a password. */
const MAX_LINE = 64 * 1024;

/**
 * A prompter on `input`: on a terminal, questions go to `output` and passwords are read in raw mode
 * without echo; otherwise (a pipe, a file, or `linesFromStdin`) every answer is the next line of
 * `input`, so scripts and tests can pipe them.
 */
export function createPrompter(
  input: NodeJS.ReadStream,
  output: NodeJS.WritableStream,
  options: { linesFromStdin?: boolean } = {},
): Prompter {
  if (input.isTTY && options.linesFromStdin !== true) return terminalPrompter(input, output);
  const lines = new LineReader(input);
  return {
    ask: (question) => lines.next(question),
    secret: (question) => lines.next(question),
    close: () => lines.close(),
  };
}

/** The error for Ctrl-C at a prompt: `LK_CANCELLED`, exit status 130. */
export function interrupted(): LatchkeyError {
  return new LatchkeyError('LK_CANCELLED', 'Interrupted.', { interrupted: true });
}

function endOfInput(question: string): LatchkeyError {
  return new LatchkeyError('LK_CANCELLED', `Input ended before an answer to "${question.trim()}".`);
}

/** Reads lines from a non-terminal stream on demand; starts reading only at the first question. */
class LineReader {
  private buffer = '';
  private ended = false;
  private failure: Error | undefined;
  private started = false;
  private wake: (() => void) | undefined;

  constructor(private readonly input: NodeJS.ReadStream) {}

  async next(question: string): Promise<string> {
    this.start();
    for (;;) {
      const newline = this.buffer.indexOf('\n');
      if (newline >= 0) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        return line.endsWith('\r') ? line.slice(0, -1) : line;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) {
        if (this.buffer === '') throw endOfInput(question);
        const last = this.buffer;
        this.buffer = '';
        return last;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  close(): void {
    if (!this.started) return;
    this.input.removeListener('data', this.onData);
    this.input.removeListener('end', this.onEnd);
    this.input.removeListener('error', this.onError);
    this.input.pause();
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.input.setEncoding('utf8');
    this.input.on('data', this.onData);
    this.input.on('end', this.onEnd);
    this.input.on('error', this.onError);
    this.input.resume();
  }

  private readonly onData = (chunk: string): void => {
    this.buffer += chunk;
    if (this.buffer.length > MAX_LINE && !this.buffer.includes('\n')) {
      this.failure = new LatchkeyError('LK_USAGE', `A line of stdin is longer than ${MAX_LINE} characters.`);
    }
    this.notify();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  private readonly onError = (error: Error): void => {
    this.failure = error;
    this.notify();
  };

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

function terminalPrompter(input: NodeJS.ReadStream, output: NodeJS.WritableStream): Prompter {
  return {
    ask: (question) => askVisible(input, output, question),
    secret: (question) => askHidden(input, output, question),
    close: () => input.pause(),
  };
}

function askVisible(input: NodeJS.ReadStream, output: NodeJS.WritableStream, question: string): Promise<string> {
  const rl = createInterface({ input, output, terminal: true });
  return new Promise<string>((resolve, reject) => {
    rl.on('SIGINT', () => {
      rl.close();
      output.write('\n');
      reject(interrupted());
    });
    rl.on('close', () => reject(endOfInput(question)));
    rl.question(question, (answer) => {
      resolve(answer);
      rl.close();
    });
  });
}

/**
 * Reads a password in raw mode, echoing nothing: Enter ends it, Backspace deletes a character,
 * Ctrl-U clears the line, Ctrl-C cancels (exit 130), Ctrl-D on an empty line ends input. Escape
 * sequences (arrow keys) are dropped.
 */
function askHidden(input: NodeJS.ReadStream, output: NodeJS.WritableStream, question: string): Promise<string> {
  // Raw mode before the question: once "Password: " is on screen, what is typed (Ctrl-C too) must
  // reach us as keys, not be echoed or turned into SIGINT by a terminal still in cooked mode.
  input.setRawMode(true);
  output.write(question);
  const editor = new HiddenLineEditor();
  input.setEncoding('utf8');
  input.resume();
  return new Promise<string>((resolve, reject) => {
    const finish = (outcome: () => void) => {
      input.removeListener('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      outcome();
    };
    const onData = (chunk: string) => {
      const step = editor.feed(chunk);
      if (step === 'enter') finish(() => resolve(editor.value()));
      else if (step === 'interrupt') finish(() => reject(interrupted()));
      else if (step === 'eof') finish(() => reject(endOfInput(question)));
    };
    input.on('data', onData);
  });
}

/** The line editing of a hidden prompt, apart from the terminal so its rules are plain to read. */
export class HiddenLineEditor {
  private chars: string[] = [];
  private escape: 'none' | 'start' | 'sequence' = 'none';

  /** Feeds typed characters; says whether the line is done, interrupted or at end of input. */
  feed(chunk: string): 'more' | 'enter' | 'interrupt' | 'eof' {
    for (const char of chunk) {
      if (this.skipEscape(char)) continue;
      switch (char) {
        case '\r':
        case '\n':
          return 'enter';
        case '\u0003':
          return 'interrupt';
        case '\u0004':
          if (this.chars.length === 0) return 'eof';
          break;
        case '\u007f':
        case '\b':
          this.chars.pop();
          break;
        case '\u0015':
          this.chars = [];
          break;
        case '\u001b':
          this.escape = 'start';
          break;
        default:
          if (char >= ' ') this.chars.push(char);
      }
    }
    return 'more';
  }

  value(): string {
    return this.chars.join('');
  }

  /** Drops ESC [ … final-byte (CSI, ECMA-48 §5.4) and ESC O x / ESC x; true while inside one. */
  private skipEscape(char: string): boolean {
    if (this.escape === 'none') return false;
    if (this.escape === 'start') {
      this.escape = char === '[' || char === 'O' ? 'sequence' : 'none';
      return true;
    }
    const code = char.charCodeAt(0);
    if (code >= 0x40 && code <= 0x7e) this.escape = 'none';
    return true;
  }
}
