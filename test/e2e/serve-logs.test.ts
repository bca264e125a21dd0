import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LatchkeyClient } from '@latchkey/client';
import { fromBase64Url, toBase64Url, toHex, utf8 } from '@latchkey/core';
import { afterAll, describe, expect, it } from 'vitest';
import { type Running, serveCommand, start } from '../support/cli-process.js';
import { codeOf } from '../support/errors.js';
import { freePort } from '../support/free-port.js';
import { rawLogin } from '../support/raw-login.js';
import { type Secret, spellings } from '../support/secret-search.js';
import { TEST_KEY_STRETCHING } from '../support/server.js';

/**
 * `latchkey serve` as people run it, through its output streams: stdout carries the command's result
 * alone (one JSON document under --json), the server log goes to stderr, and that log carries no
 * secret, even at trace level with the default mailer printing one-time codes into it.
 */

const EMAIL = 'log-reader@example.com';
const PASSWORDS = ['first Pässwörd in the log?', 'second Pässwörd in the log?'] as const;

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** `latchkey serve` on a free port of 127.0.0.1 in a fresh directory, mail to the log (no SMTP). */
async function startServe(extraArgs: readonly string[]): Promise<{ serve: Running; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-serve-logs-'));
  dirs.push(dir);
  const port = await freePort();
  const { argv, env } = serveCommand(join(dir, 'data'), port, extraArgs);
  const serve = start(process.execPath, argv, env);
  return { serve, url: `http://127.0.0.1:${port}` };
}

/** SIGTERM, and how the process ended: a clean exit is part of every test here. */
async function stop(serve: Running) {
  serve.child.kill('SIGTERM');
  const done = await serve.done;
  expect(done, done.stderr).toMatchObject({ code: 0, signal: null });
  return done;
}

/** The log's JSON lines (stderr), each parsed; a line that is not JSON fails the test. */
function logEntries(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Which secrets appear in `log`, and in which spelling (raw, hex, HEX, base64 padded or not, base64url). */
function secretsIn(log: Buffer, secrets: Secret[]): string[] {
  return secrets.flatMap((secret) =>
    spellings(secret.bytes)
      .filter(({ needle }) => log.includes(needle))
      .map(({ encoding }) => `${secret.name} (${encoding})`),
  );
}

describe('latchkey serve: its output streams', () => {
  it('prints exactly one JSON document on stdout under --json, and its log on stderr', async () => {
    const { serve, url } = await startServe(['--json']);
    try {
      await serve.waitFor(`"url":"${url}"`, 30_000);
      expect((await fetch(`${url}/health`)).status).toBe(200);
      await serve.waitFor('"url":"/health"'); // the request's log line, so the log below is not empty
      const { stdout, stderr } = await stop(serve);

      // Read to the end (the process has exited): one line, one document, nothing else.
      expect(stdout.endsWith('\n')).toBe(true);
      expect(stdout.trimEnd().split('\n')).toHaveLength(1);
      const document = JSON.parse(stdout) as Record<string, unknown>;
      expect(Object.keys(document).sort()).toEqual(['url', 'web']);
      expect(document.url).toBe(url);
      expect(document.web === null || typeof document.web === 'string').toBe(true);

      const entries = logEntries(stderr);
      expect(entries.find((entry) => entry.msg === 'storage ready')).toMatchObject({ mail: 'log' });
      expect(entries.some((entry) => (entry.req as { url?: string } | undefined)?.url === '/health')).toBe(true);
    } finally {
      serve.child.kill('SIGKILL');
    }
  });

  it('logs no password, export key, kA, kB or session token through sign-up, login and a password change', async () => {
    const [first, second] = PASSWORDS;
    // Trace: the most the server ever logs, so what holds here holds at every level.
    const { serve, url } = await startServe(['--log-level', 'trace']);
    const secrets: Secret[] = [];
    const keep = (name: string, bytes: Uint8Array) => secrets.push({ name, bytes: new Uint8Array(bytes) });
    let verificationCode: string | undefined;
    const canary = globalThis.crypto.getRandomValues(new Uint8Array(24));
    try {
      await serve.waitFor(`Latchkey listening on ${url}`, 30_000);
      const client = new LatchkeyClient({ serverUrl: url, keyStretching: TEST_KEY_STRETCHING });

      // The default mailer: the code is read from the server's log, as its operator would.
      await client.signUp(EMAIL, first);
      await serve.waitFor(`"mailTo":"${EMAIL}"`);
      const mail = logEntries(serve.output().stderr).find((entry) => entry.mailTo === EMAIL);
      expect(mail).toMatchObject({ level: 40, subject: 'Your Latchkey verification code' });
      verificationCode = /code: (\d{8})/.exec(String(mail?.msg))?.[1];
      if (verificationCode === undefined) throw new Error(`no code in the mail line: ${JSON.stringify(mail)}`);
      await client.verifyEmail(EMAIL, verificationCode);

      const session = await client.logIn(EMAIL, first, { deviceName: 'log test' });
      keep('password 1', utf8(first));
      keep('kA', session.kA);
      keep('kB', session.kB);
      keep('session token 1', fromBase64Url(session.state.token));
      expect((await session.account()).email).toBe(EMAIL);
      const raw1 = await rawLogin(url, EMAIL, first);
      keep('export key 1', raw1.exportKey);
      keep('OPAQUE session key (raw login 1)', raw1.sessionKey);
      keep('session token (raw login 1)', raw1.token);

      await session.changePassword(first, second);
      keep('password 2', utf8(second));
      expect(await codeOf(client.logIn(EMAIL, first))).toBe('LK_LOGIN_FAILED');
      const renewed = await client.logIn(EMAIL, second);
      expect(renewed.kB).toEqual(session.kB);
      keep('session token 2', fromBase64Url(renewed.state.token));
      await renewed.listSessions();
      const raw2 = await rawLogin(url, EMAIL, second);
      keep('export key 2', raw2.exportKey);
      keep('OPAQUE session key (raw login 2)', raw2.sessionKey);
      keep('session token (raw login 2)', raw2.token);

      // Positive control for the encodings: request URLs are logged, so a canary sent in a URL must
      // be found in the spellings it was sent in.
      for (const spelled of [toHex(canary), toBase64Url(canary)]) {
        expect((await fetch(`${url}/canary/${spelled}`)).status).toBe(404);
        await serve.waitFor(spelled);
      }

      const { stdout, stderr } = await stop(serve);
      // stdout is the command's result alone; every log line went to stderr.
      expect(stdout).toBe(`Latchkey listening on ${url}\n`);
      const entries = logEntries(stderr);
      expect(entries.length).toBeGreaterThan(20);
      expect(entries.find((entry) => entry.msg === 'storage ready')).toMatchObject({ mail: 'log' });

      // The whole captured output, both streams, byte for byte.
      const log = Buffer.from(stdout + stderr);
      expect(log.includes(EMAIL)).toBe(true);
      expect(log.includes(verificationCode)).toBe(true);
      expect(secretsIn(log, [{ name: 'canary', bytes: canary }])).toEqual(
        expect.arrayContaining(['canary (hex)', 'canary (base64url)']),
      );
      expect(secrets).toHaveLength(12);
      expect(secretsIn(log, secrets)).toEqual([]);
    } finally {
      serve.child.kill('SIGKILL');
    }
  });
});
