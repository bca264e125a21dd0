import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LatchkeyClient } from '@latchkey/client';
import { afterAll, describe, expect, it } from 'vitest';
import { type Running, serveCommand, start } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { TEST_KEY_STRETCHING } from '../support/server.js';
import { startSmtpSink } from '../support/smtp.js';

/**
 * `latchkey serve` on a terminal: util-linux `script` gives it a real pseudo-terminal, so the server's
 * own detection (stderr.isTTY) is what is tested. With no SMTP server the verification code is framed
 * on its own line for the person at the terminal; with SMTP it is mailed and never printed. Off a
 * terminal the log stays JSON (test/e2e/serve-logs.test.ts).
 */

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

/** `latchkey serve` inside `script`, on a pseudo-terminal; its output is what the terminal showed. */
async function serveOnTerminal(extraArgs: readonly string[]): Promise<{ serve: Running; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-serve-tty-'));
  dirs.push(dir);
  const port = await freePort();
  const { argv, env } = serveCommand(join(dir, 'data'), port, extraArgs);
  const command = [process.execPath, ...argv].map(quote).join(' ');
  // -q: no banner; -e: the command's exit status; -f: flush at once; /dev/null: no typescript file.
  const serve = start('script', ['-qefc', command, '/dev/null'], env);
  const url = `http://127.0.0.1:${port}`;
  await serve.waitFor(`Latchkey listening on ${url}`, 30_000);
  return { serve, url };
}

async function stop(serve: Running): Promise<string> {
  serve.child.kill('SIGTERM');
  const done = await serve.done;
  return done.stdout + done.stderr;
}

describe('latchkey serve on a terminal', () => {
  it('frames the verification code on a line of its own, with no JSON, when no SMTP server is set', async () => {
    const email = 'tty-reader@example.com';
    const { serve, url } = await serveOnTerminal([]);
    try {
      const client = new LatchkeyClient({ serverUrl: url, keyStretching: TEST_KEY_STRETCHING });
      await client.signUp(email, 'a terminal password');
      await serve.waitFor(`Mail to ${email}`);
      await serve.waitFor('└');
      const shown = serve.output().stdout.replaceAll('\r\n', '\n');
      const code = /^│ {3}Confirm your email address with this code: (\d{8})$/m.exec(shown)?.[1];
      expect(code, shown).toBeDefined();
      expect(shown).toContain('│ Subject: Your Latchkey verification code');
      // The code read off the terminal is the real one.
      await client.verifyEmail(email, code as string);
      // Formatted for people: no line of the log is JSON.
      expect(shown.split('\n').filter((line) => line.startsWith('{'))).toEqual([]);
      expect(shown).toMatch(/ INFO {2}storage ready /);
    } finally {
      await stop(serve);
    }
  });

  it('never prints the code when SMTP is configured', async () => {
    const email = 'tty-smtp@example.com';
    const sink = await startSmtpSink();
    const { serve, url } = await serveOnTerminal(['--smtp', sink.url]);
    try {
      const client = new LatchkeyClient({ serverUrl: url, keyStretching: TEST_KEY_STRETCHING });
      await client.signUp(email, 'a terminal password');
      const code = await sink.codeFor(email);
      await client.verifyEmail(email, code);
      const shown = await stop(serve);
      expect(shown).toContain('storage ready');
      expect(shown).not.toContain(code);
      expect(shown).not.toContain('Mail to');
    } finally {
      serve.child.kill('SIGKILL');
      await sink.close();
    }
  });
});
