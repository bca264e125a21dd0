import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64Url, sha256Digest, toBase64, toBase64Url, toHex } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cli, cliError, cliJson, lines, MAIN, ROOT, start, startCli } from '../support/cli-process.js';
import { snapshotDatabase } from '../support/db-snapshot.js';
import { codeOf } from '../support/errors.js';
import { freePort } from '../support/free-port.js';
import {
  createVerifiedAccount,
  startTestServer,
  TEST_KEY_STRETCHING_SPEC,
  type TestServer,
} from '../support/server.js';

/** The LK_* code of a `--json` command that must fail with exit status 1. */
const cliErrorCodeOf = async (...args: Parameters<typeof cliError>) => (await cliError(...args)).code;

describe('the latchkey CLI', () => {
  let server: TestServer;
  const homes: string[] = [];
  /** A fresh LATCHKEY_HOME (its own session file) per test. */
  const newHome = () => {
    const home = mkdtempSync(join(tmpdir(), 'latchkey-cli-'));
    homes.push(home);
    return join(home, 'state');
  };

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  });

  it('prints help through the bin launcher, and answers a bad command line with exit status 2', async () => {
    const help = start(process.execPath, [BIN, '--help'], {});
    help.child.stdin.end();
    const top = await help.done;
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('serve');
    expect(top.stdout).toContain('account …');

    const login = await cli(['account', 'login', '--help'], newHome());
    expect(login.code).toBe(0);
    expect(login.stdout).toContain('--password-stdin');
    expect(login.stdout).toContain('--server URL');

    const unknown = await cli(['account', 'frobnicate', '--json'], newHome());
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ error: { code: 'LK_USAGE' } });
    const badOption = await cli(['account', 'whoami', '--nope'], newHome());
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toMatch(/^error LK_USAGE: /);
  });

  it('signs up with the code typed after the mail arrives, and with --no-verify then `account verify`', async () => {
    const home = newHome();
    const before = server.smtp.messages.length;
    const signup = startCli(['account', 'signup', 'typed@example.com', '--server', server.url, '--json'], home);
    signup.child.stdin.write(lines('typed password', 'typed password'));
    const code = await server.smtp.codeFor('typed@example.com', { after: before });
    signup.child.stdin.end(lines(code));
    const done = await signup.done;
    expect(done.code, done.stderr).toBe(0);
    const created = JSON.parse(done.stdout) as Record<string, unknown>;
    expect(created).toEqual({ accountId: expect.any(String), email: 'typed@example.com', verified: true });
    const session = await server.client().logIn('typed@example.com', 'typed password');
    expect(session.accountId).toBe(created.accountId);

    const mark = server.smtp.messages.length;
    const later = await cliJson(
      ['account', 'signup', 'Later@Example.com', '--no-verify', '--server', server.url],
      home,
      lines('later password', 'later password'),
    );
    expect(later).toMatchObject({ email: 'later@example.com', verified: false });
    expect(await codeOf(server.client().logIn('later@example.com', 'later password'))).toBe('LK_ACCOUNT_UNVERIFIED');
    const laterCode = await server.smtp.codeFor('later@example.com', { after: mark });
    const verified = await cliJson(['account', 'verify', 'later@example.com', laterCode, '--server', server.url], home);
    expect(verified).toEqual({ email: 'later@example.com', verified: true });
    await server.client().logIn('later@example.com', 'later password');
  });

  it('refuses two different passwords at sign-up with LK_PASSWORD_MISMATCH, before contacting the server', async () => {
    const home = newHome();
    const args = ['account', 'signup', 'mismatch@example.com', '--server', server.url];
    expect(await cliErrorCodeOf(args, home, lines('first password', 'other password'))).toBe('LK_PASSWORD_MISMATCH');
    expect(await cliErrorCodeOf(args, home, lines('short', 'short'))).toBe('LK_PASSWORD_TOO_SHORT');
    expect(await codeOf(server.client().logIn('mismatch@example.com', 'first password'))).toBe('LK_LOGIN_FAILED');
  });

  it('fails a wrong password with exit status 1 and LK_LOGIN_FAILED, saving nothing', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'wrong@example.com', 'right password');
    const args = ['account', 'login', 'wrong@example.com', '--server', server.url];
    expect(await cliErrorCodeOf(args, home, lines('wrong password'))).toBe('LK_LOGIN_FAILED');
    expect(existsSync(join(home, 'session.json'))).toBe(false);

    const human = await cli(args, home, lines('wrong password'));
    expect(human.code).toBe(1);
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/^error LK_LOGIN_FAILED: /m);
  });

  it('logs in, saves a 0600 session file without kA or kB, and answers whoami and sessions', async () => {
    const home = newHome();
    const { accountId } = await createVerifiedAccount(server, 'login@example.com', 'login password');
    const login = await cliJson(
      ['account', 'login', 'login@example.com', '--server', server.url, '--device-name', 'cli test'],
      home,
      lines('login password'),
    );
    expect(login).toEqual({
      server: server.url,
      email: 'login@example.com',
      accountId,
      sessionId: expect.any(String),
      expiresAt: expect.any(Number),
    });

    const file = join(home, 'session.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(home).mode & 0o777).toBe(0o700);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(saved).sort()).toEqual(
      [
        'accountId',
        'deviceToken',
        'email',
        'expiresAt',
        'keysChangedAt',
        'server',
        'sessionId',
        'token',
        'version',
      ].sort(),
    );
    // The keys themselves, from a second login, must appear in no encoding.
    const keys = await server.client().logIn('login@example.com', 'login password');
    const text = readFileSync(file, 'utf8');
    for (const key of [keys.kA, keys.kB]) {
      for (const encoded of [toHex(key), toBase64(key), toBase64Url(key)]) expect(text).not.toContain(encoded);
    }

    // No --server now: the session file names its server.
    const whoami = await cliJson(['account', 'whoami'], home);
    expect(whoami).toEqual({
      server: server.url,
      sessionId: login.sessionId,
      sessionExpiresAt: login.expiresAt,
      accountId,
      email: 'login@example.com',
      verified: true,
      createdAt: expect.any(Number),
      keysChangedAt: expect.any(Number),
      passwordChangedAt: expect.any(Number),
    });

    const listed = (await cliJson(['account', 'sessions'], home)).sessions as Record<string, unknown>[];
    expect(listed).toHaveLength(2);
    expect(listed.find((s) => s.current === true)).toMatchObject({
      sessionId: login.sessionId,
      deviceName: 'cli test',
    });

    const other = keys.state.sessionId;
    expect(await cliJson(['account', 'sessions', '--revoke', other], home)).toEqual({ revoked: other, current: false });
    expect(await codeOf(keys.account())).toBe('LK_UNAUTHORIZED');
    const after = (await cliJson(['account', 'sessions'], home)).sessions as Record<string, unknown>[];
    expect(after.map((s) => s.sessionId)).toEqual([login.sessionId]);

    // Logging in again presents the saved device token, which the server replaces: the one device
    // token the server holds for the account (the revoked session's went with it) is the file's new one.
    const firstToken = saved.deviceToken as string;
    await cliJson(['account', 'login', 'login@example.com', '--server', server.url], home, lines('login password'));
    const secondToken = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>).deviceToken as string;
    expect(secondToken).not.toBe(firstToken);
    const held = snapshotDatabase(join(server.dir, 'latchkey.db'))['device_tokens']?.filter(
      (row) => row['account_id'] === accountId,
    );
    expect(held?.map((row) => row['token_hash'])).toEqual([toHex(sha256Digest(fromBase64Url(secondToken)))]);

    const elsewhere = await cli(['account', 'whoami', '--server', 'http://127.0.0.1:9', '--json'], home);
    expect(elsewhere.code).toBe(1);
    expect(JSON.parse(elsewhere.stdout)).toMatchObject({ error: { code: 'LK_NOT_LOGGED_IN' } });
  });

  it('says to log in again when the saved session has ended on the server', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'ended@example.com', 'ended password');
    const login = await cliJson(
      ['account', 'login', 'ended@example.com', '--server', server.url],
      home,
      lines('ended password'),
    );
    const other = await server.client().logIn('ended@example.com', 'ended password');
    await other.revokeSession(login.sessionId as string);

    const ended = await cliError(['account', 'whoami'], home);
    expect(ended.code).toBe('LK_UNAUTHORIZED');
    expect(ended.message).toMatch(/^Your session has ended .*; run `latchkey account login`\.$/);
    const human = await cli(['account', 'sessions'], home);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^error LK_UNAUTHORIZED: Your session has ended .*run `latchkey account login`/);
  });

  it('finds a server that is down before asking for anything, with LK_NETWORK naming its URL', async () => {
    const home = newHome();
    const down = `http://127.0.0.1:${await freePort()}`;
    for (const args of [
      ['account', 'login', 'down@example.com', '--server', down],
      ['account', 'signup', '--server', down],
    ]) {
      // No answers on stdin: a prompt before the check would end in LK_CANCELLED instead.
      const result = await cli([...args, '--json'], home);
      expect(result.code, result.stdout + result.stderr).toBe(1);
      expect(result.stderr).toBe('');
      const { error } = JSON.parse(result.stdout) as { error: { code: string; message: string } };
      expect(error).toEqual({
        code: 'LK_NETWORK',
        message: `Cannot reach the Latchkey server at ${down} (ECONNREFUSED). Is it running? Start one with \`latchkey serve\`, or name another with --server URL or LATCHKEY_SERVER.`,
        details: { server: down, reason: 'ECONNREFUSED' },
      });
    }
    const human = await cli(['account', 'login', '--server', down], home);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^error LK_NETWORK: Cannot reach the Latchkey server at http:\/\/127\.0\.0\.1:\d+ /);
    expect(human.stderr).not.toContain('Email:');

    // A saved session whose server has gone: the password commands check before asking too.
    await createVerifiedAccount(server, 'down@example.com', 'down password');
    await cliJson(['account', 'login', 'down@example.com', '--server', server.url], home, lines('down password'));
    const file = join(home, 'session.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace(server.url, down));
    // A command that asks nothing still names the reason, not fetch's "fetch failed".
    const whoami = await cliError(['account', 'whoami'], home);
    expect(whoami).toEqual({
      code: 'LK_NETWORK',
      message: `Could not reach ${down} (ECONNREFUSED).`,
      details: { reason: 'ECONNREFUSED' },
    });
    for (const args of [
      ['account', 'passwd'],
      ['account', 'delete', '--yes'],
      ['backup', 'status'],
    ]) {
      const result = await cli(args, home);
      expect(result.code).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(/^error LK_NETWORK: Cannot reach the Latchkey server at http/);
      expect(result.stderr).not.toContain('assword:');
    }
  });

  it('runs as the README says, `npx latchkey` and `npm run --silent latchkey --`, with stdout the result alone', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'npx@example.com', 'npx password');
    await cliJson(['account', 'login', 'npx@example.com', '--server', server.url], home, lines('npx password'));
    // The launcher npm links into node_modules/.bin at `npm install`: executable, run by node.
    const manifest = JSON.parse(readFileSync(join(ROOT, 'packages/cli/package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    const launcher = join(ROOT, 'packages/cli', manifest.bin.latchkey as string);
    expect(statSync(launcher).mode & 0o111).not.toBe(0);
    expect(readFileSync(launcher, 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);

    for (const [command, args] of [
      ['npx', ['latchkey', 'account', 'whoami', '--json']],
      ['npm', ['run', '--silent', 'latchkey', '--', 'account', 'whoami', '--json']],
    ] as const) {
      const running = start(command, args, { LATCHKEY_HOME: home });
      running.child.stdin.end();
      const done = await running.done;
      expect(done.code, `${command}: ${done.stderr}`).toBe(0);
      expect(JSON.parse(done.stdout), command).toMatchObject({ email: 'npx@example.com', server: server.url });
    }
  });

  it('changes the password keeping kB, ending the other sessions', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'passwd@example.com', 'old password');
    await cliJson(['account', 'login', 'passwd@example.com', '--server', server.url], home, lines('old password'));
    const other = await server.client().logIn('passwd@example.com', 'old password');
    const kB = toHex(other.kB);

    expect(
      await cliErrorCodeOf(['account', 'passwd'], home, lines('wrong password', 'new password', 'new password')),
    ).toBe('LK_LOGIN_FAILED');
    const changed = await cliJson(['account', 'passwd'], home, lines('old password', 'new password', 'new password'));
    expect(changed).toEqual({ revokedSessions: 1 });
    expect(await codeOf(other.account())).toBe('LK_UNAUTHORIZED');
    expect(await cliJson(['account', 'whoami'], home)).toMatchObject({ email: 'passwd@example.com' });

    expect(await codeOf(server.client().logIn('passwd@example.com', 'old password'))).toBe('LK_LOGIN_FAILED');
    const renewed = await server.client().logIn('passwd@example.com', 'new password');
    expect(toHex(renewed.kB)).toBe(kB);
  });

  it('logs out: the token stops working and the session file is gone', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'logout@example.com', 'logout password');
    await cliJson(
      ['account', 'login', 'logout@example.com', '--server', server.url, '--password-stdin'],
      home,
      lines('logout password'),
    );
    const { token } = JSON.parse(readFileSync(join(home, 'session.json'), 'utf8')) as { token: string };

    const out = await cliJson(['account', 'logout'], home);
    expect(out).toEqual({ loggedOut: true, sessionId: expect.any(String) });
    expect(existsSync(join(home, 'session.json'))).toBe(false);
    const response = await fetch(`${server.url}/v1/account`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(401);
    expect(((await response.json()) as { code: string }).code).toBe('LK_UNAUTHORIZED');
    expect(await cliErrorCodeOf(['account', 'whoami'], home)).toBe('LK_NOT_LOGGED_IN');
    expect(await cliJson(['account', 'logout'], home)).toEqual({ loggedOut: false });
  });

  it('resets the password with the mailed code typed in, replacing kB and ending the saved session', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'reset@example.com', 'forgotten password');
    await cliJson(['account', 'login', 'reset@example.com', '--server', server.url], home, lines('forgotten password'));
    const before = await server.client().logIn('reset@example.com', 'forgotten password');
    const oldKB = toHex(before.kB);

    const mark = server.smtp.messages.length;
    const reset = startCli(['account', 'reset', 'reset@example.com', '--server', server.url, '--json'], home);
    const code = await server.smtp.codeFor('reset@example.com', { after: mark });
    reset.child.stdin.end(lines(code, 'brand new password', 'brand new password'));
    const done = await reset.done;
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toEqual({ email: 'reset@example.com', keysChangedAt: expect.any(Number) });

    expect(existsSync(join(home, 'session.json'))).toBe(false);
    expect(await codeOf(before.account())).toBe('LK_UNAUTHORIZED');
    expect(await codeOf(server.client().logIn('reset@example.com', 'forgotten password'))).toBe('LK_LOGIN_FAILED');
    const after = await server.client().logIn('reset@example.com', 'brand new password');
    expect(toHex(after.kB)).not.toBe(oldKB);

    // The two-step form for scripts: --send-only, then --code with the password on stdin.
    const mark2 = server.smtp.messages.length;
    expect(
      await cliJson(['account', 'reset', 'reset@example.com', '--send-only', '--server', server.url], home),
    ).toEqual({ email: 'reset@example.com', codeRequested: true });
    const code2 = await server.smtp.codeFor('reset@example.com', { after: mark2 });
    await cliJson(
      ['account', 'reset', 'reset@example.com', '--code', code2, '--password-stdin', '--server', server.url],
      home,
      lines('third password'),
    );
    await server.client().logIn('reset@example.com', 'third password');
    expect(
      await cliErrorCodeOf(
        ['account', 'reset', 'reset@example.com', '--code', code2, '--server', server.url],
        home,
        lines('fourth password', 'fourth password'),
      ),
    ).toBe('LK_CODE_INVALID');
  });

  it('deletes the account only after the typed confirmation and the password', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'delete@example.com', 'delete password');
    await cliJson(['account', 'login', 'delete@example.com', '--server', server.url], home, lines('delete password'));

    expect(await cliErrorCodeOf(['account', 'delete'], home, lines('someone@example.com', 'delete password'))).toBe(
      'LK_CANCELLED',
    );
    expect(await cliErrorCodeOf(['account', 'delete'], home, lines('delete@example.com', 'wrong password'))).toBe(
      'LK_LOGIN_FAILED',
    );
    expect(await cliJson(['account', 'whoami'], home)).toMatchObject({ email: 'delete@example.com' });

    const deleted = await cliJson(['account', 'delete'], home, lines('delete@example.com', 'delete password'));
    expect(deleted).toEqual({ deleted: true, accountId: expect.any(String), email: 'delete@example.com' });
    expect(existsSync(join(home, 'session.json'))).toBe(false);
    expect(await codeOf(server.client().logIn('delete@example.com', 'delete password'))).toBe('LK_LOGIN_FAILED');
  });

  it('reads a password on a terminal without echo, with Backspace, and Ctrl-C exits 130', async () => {
    const home = newHome();
    await createVerifiedAccount(server, 'tty@example.com', 'terminal password');
    // script(1) gives the CLI a real pseudo-terminal; what it prints is what a person would see.
    const command = `'${process.execPath}' --import tsx '${MAIN}' account login --server '${server.url}'`;
    const env = { LATCHKEY_HOME: home, TERM: 'dumb', LATCHKEY_KEY_STRETCHING: TEST_KEY_STRETCHING_SPEC };
    const tty = start('script', ['-qfec', command, '/dev/null'], env);
    await tty.waitFor('Email: ');
    tty.child.stdin.write('tty@example.com\r');
    await tty.waitFor('Password: ');
    // A typo erased with Backspace, and an arrow key that must not become part of the password.
    tty.child.stdin.write('terminal passwordX\u007f\u001b[D\r');
    const done = await tty.done;
    tty.child.stdin.end();
    expect(done.code, done.stdout).toBe(0);
    expect(done.stdout).toContain('tty@example.com');
    expect(done.stdout).toContain('Logged in as tty@example.com');
    expect(done.stdout).not.toContain('terminal');

    const cancel = start('script', ['-qfec', `${command} tty@example.com`, '/dev/null'], env);
    await cancel.waitFor('Password: ');
    cancel.child.stdin.write('half typed\u0003');
    const cancelled = await cancel.done;
    cancel.child.stdin.end();
    expect(cancelled.code).toBe(130);
    expect(cancelled.stdout).toContain('error LK_CANCELLED');
    expect(cancelled.stdout).not.toContain('half typed');
  });

  it('serves on a free port with a fresh SQLite database, answers /health, and exits 0 on SIGTERM', async () => {
    const dir = newHome();
    const port = await freePort();
    const serve = start(
      process.execPath,
      [
        BIN,
        'serve',
        '--port',
        String(port),
        '--db',
        `sqlite:${join(dir, 'db', 'latchkey.db')}`,
        '--master-key',
        join(dir, 'keys', 'master.key'),
        '--key-stretching',
        'argon2id:m=1024,t=1,p=1',
        '--log-level',
        'warn',
      ],
      {},
    );
    try {
      await serve.waitFor(`Latchkey listening on http://127.0.0.1:${port}`, 30_000);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok', version: expect.any(String) });
      const config = (await (await fetch(`http://127.0.0.1:${port}/v1/config`)).json()) as Record<string, unknown>;
      expect(config.keyStretching).toEqual({ 'argon2id-custom': { memory: 1024, iterations: 1, parallelism: 1 } });
      expect(statSync(join(dir, 'keys', 'master.key')).mode & 0o777).toBe(0o600);
      expect(existsSync(join(dir, 'db', 'latchkey.db'))).toBe(true);

      const stopping = Date.now();
      serve.child.kill('SIGTERM');
      const done = await serve.done;
      expect(done).toMatchObject({ code: 0, signal: null });
      expect(Date.now() - stopping).toBeLessThan(10_000);
      await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    } finally {
      serve.child.kill('SIGKILL');
    }
  });

  it('refuses a port another program holds with LK_PORT_IN_USE, naming the address and --port, and exits', async () => {
    const dir = newHome();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    try {
      const args = [
        'serve',
        ...['--host', '127.0.0.1', '--port', String(port)],
        ...['--db', `sqlite:${join(dir, 'latchkey.db')}`, '--master-key', join(dir, 'master.key')],
        ...['--log-level', 'silent'],
      ];
      const failure = await cliError(args, dir);
      expect(failure).toEqual({
        code: 'LK_PORT_IN_USE',
        message: expect.stringContaining(`127.0.0.1:${port}`),
        details: { host: '127.0.0.1', port },
      });
      expect(failure.message).toContain('--port');

      const human = await cli(args, dir);
      expect(human.code).toBe(1);
      expect(human.stdout).toBe('');
      expect(human.stderr).toBe(
        `error LK_PORT_IN_USE: Cannot listen on 127.0.0.1:${port}: another program (perhaps another latchkey serve) ` +
          `is using port ${port}. Stop it, or pick another port with --port PORT (or LATCHKEY_PORT); --port 0 takes any free one.\n`,
      );
    } finally {
      holder.close();
    }
  });

  it('refuses a bad serve flag with exit status 2', async () => {
    const bad = await cli(['serve', '--port', 'eighty', '--json'], newHome());
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: { code: 'LK_USAGE' } });
  });
});
