import { hostname } from 'node:os';
import { LatchkeyClient, type Session } from '@latchkey/client';
import { checkPassword, LatchkeyError, normalizeEmail, parseKeyStretching, type SessionSummary } from '@latchkey/core';
import { type Command, type CommandContext, columns, type OptionSpec, usageError } from '../command.js';
import { formatTime } from '../output.js';
import { checkServer } from '../reach.js';
import { clearSession, loadSession, type SavedSession, saveSession, sessionFilePath } from '../state.js';
import { lockFile, unlockedFilePath } from '../unlock.js';

/** Where the account commands talk to when neither `--server` nor `LATCHKEY_SERVER` says. */
export const DEFAULT_SERVER = 'http://127.0.0.1:8470';

/** The `--server URL` option of every command that talks to a server. */
export const SERVER: Record<string, OptionSpec> = {
  server: {
    type: 'string',
    value: 'URL',
    description: `the server (default: $LATCHKEY_SERVER, the logged-in session's, or ${DEFAULT_SERVER})`,
  },
};
/** The `--password-stdin` option of every command that asks for a password. */
export const PASSWORD_STDIN: Record<string, OptionSpec> = {
  'password-stdin': {
    type: 'boolean',
    description: 'read passwords (and any other answer) as lines of stdin, each password once',
  },
};

/** The help paragraph on how passwords and answers are read. */
export const STDIN_NOTE =
  'Passwords are read without echo on a terminal; when stdin is not a terminal, each answer is the\n' +
  'next line of stdin, in the order the prompts would ask.';

/**
 * A client of `serverUrl`. With `LATCHKEY_KEY_STRETCHING` set (the variable `latchkey serve` reads),
 * it expects exactly that setting from the server; without it, the SDK's bounds apply (at least RFC
 * 9106's memory-constrained option), so a server on a cheaper setting is refused unless pinned here.
 */
export function clientFor(env: NodeJS.ProcessEnv, serverUrl: string): LatchkeyClient {
  const pinned = env.LATCHKEY_KEY_STRETCHING || undefined;
  return new LatchkeyClient({
    serverUrl,
    ...(pinned === undefined ? {} : { keyStretching: parseKeyStretching(pinned) }),
  });
}

/** The server named on the command line or in the environment, if any. */
function explicitServer(ctx: CommandContext): string | undefined {
  const text = ctx.args.string('server') ?? (ctx.env.LATCHKEY_SERVER || undefined);
  return text === undefined ? undefined : checkServerUrl(text);
}

function checkServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(`not a URL: ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usageError(`not an http(s) URL: ${text}`);
  return text.replace(/\/+$/, '');
}

/**
 * A client for the commands that need no session (sign-up, verify, login, reset), once the server
 * has answered: they ask for a password, and a server that is down should be found out first.
 */
async function connect(ctx: CommandContext): Promise<{ client: LatchkeyClient; server: string }> {
  const server = explicitServer(ctx) ?? DEFAULT_SERVER;
  await checkServer(server);
  return { client: clientFor(ctx.env, server), server };
}

/** The saved session, resumed (without keys); `LK_NOT_LOGGED_IN` without one. */
export function resumeSession(ctx: CommandContext): { session: Session; saved: SavedSession; path: string } {
  const path = sessionFilePath(ctx.env);
  const saved = loadSession(path);
  if (saved === undefined) throw new LatchkeyError('LK_NOT_LOGGED_IN', 'Not logged in: run `latchkey account login`.');
  const server = explicitServer(ctx);
  if (server !== undefined && server !== saved.server) {
    throw new LatchkeyError(
      'LK_NOT_LOGGED_IN',
      `The saved session is for ${saved.server}, not ${server}; log in there.`,
    );
  }
  const client = clientFor(ctx.env, saved.server);
  return { session: client.resume({ ...saved }), saved, path };
}

/** {@link resumeSession}, once its server has answered: for the commands that go on to ask for a password. */
export async function resumeReachable(
  ctx: CommandContext,
): Promise<{ session: Session; saved: SavedSession; path: string }> {
  const resumed = resumeSession(ctx);
  await checkServer(resumed.saved.server);
  return resumed;
}

async function emailArgument(ctx: CommandContext): Promise<string> {
  const email = ctx.args.positional(0) ?? (await ctx.prompt.ask('Email: '));
  return normalizeEmail(email);
}

/** A new password, typed twice (once with `--password-stdin`), checked before any network call. */
async function newPassword(ctx: CommandContext, label: string): Promise<string> {
  const password = await ctx.prompt.secret(`${label}: `);
  checkPassword(password);
  if (ctx.args.flag('password-stdin')) return password;
  const again = await ctx.prompt.secret(`${label} again: `);
  if (again !== password) throw new LatchkeyError('LK_PASSWORD_MISMATCH');
  return password;
}

const signup: Command = {
  name: 'account signup',
  summary: 'Create an account (OPAQUE: the server never sees the password), then verify the emailed code',
  positionals: { usage: '[EMAIL]', max: 1 },
  options: {
    ...SERVER,
    'no-verify': { type: 'boolean', description: 'do not ask for the code now (use `account verify` later)' },
    ...PASSWORD_STDIN,
  },
  details: STDIN_NOTE,
  async run(ctx) {
    const { client } = await connect(ctx);
    const email = await emailArgument(ctx);
    const password = await newPassword(ctx, 'Password');
    const { accountId } = await client.signUp(email, password);
    if (ctx.args.flag('no-verify')) {
      ctx.out.result(
        { accountId, email, verified: false },
        `Account ${accountId} created. Verify it: latchkey account verify ${email} CODE --account ${accountId}`,
      );
      return;
    }
    ctx.out.hint(`Account created; a code was sent to ${email}.`);
    const verified = await verifyWithPromptedCode(ctx, client, email, accountId);
    ctx.out.result(
      { accountId, email, verified },
      verified
        ? `Email verified. Log in: latchkey account login ${email}`
        : `Verify later: latchkey account verify ${email} CODE`,
    );
  },
};

/** Asks for the emailed code; false if input ends first (the account stays, unverified). */
async function verifyWithPromptedCode(
  ctx: CommandContext,
  client: LatchkeyClient,
  email: string,
  accountId: string,
): Promise<boolean> {
  let code: string;
  try {
    code = await ctx.prompt.ask('Code from the email: ');
  } catch (error) {
    if (error instanceof LatchkeyError && error.code === 'LK_CANCELLED' && error.details?.interrupted !== true) {
      return false;
    }
    throw error;
  }
  try {
    await client.verifyEmail(email, code, { accountId });
  } catch (error) {
    ctx.out.hint(
      `The account exists; verify it with: latchkey account verify ${email} CODE --account ${accountId} (or --resend)`,
    );
    throw error;
  }
  return true;
}

const verify: Command = {
  name: 'account verify',
  summary: 'Verify an email address with the code the server mailed',
  positionals: { usage: 'EMAIL [CODE]', max: 2 },
  options: {
    ...SERVER,
    resend: { type: 'boolean', description: 'mail a new code instead' },
    account: {
      type: 'string',
      value: 'ID',
      description:
        'the account id `account signup` printed: a code from a later sign-up of the email (which replaced yours) is then refused',
    },
  },
  async run(ctx) {
    const { client } = await connect(ctx);
    const email = await emailArgument(ctx);
    if (ctx.args.flag('resend')) {
      if (ctx.args.positional(1) !== undefined) throw usageError('give a CODE or --resend, not both');
      await client.resendVerification(email);
      ctx.out.result({ email, codeSent: true }, `A new code was sent to ${email}.`);
      return;
    }
    const code = ctx.args.positional(1) ?? (await ctx.prompt.ask('Code from the email: '));
    const accountId = ctx.args.string('account');
    await client.verifyEmail(email, code, accountId === undefined ? {} : { accountId });
    ctx.out.result({ email, verified: true }, `Email verified. Log in: latchkey account login ${email}`);
  },
};

const login: Command = {
  name: 'account login',
  summary: 'Log in and save the session (its token, never kA or kB) for the other commands',
  positionals: { usage: '[EMAIL]', max: 1 },
  options: {
    ...SERVER,
    'device-name': { type: 'string', value: 'NAME', description: 'how `account sessions` names this login' },
    ...PASSWORD_STDIN,
  },
  details: `${STDIN_NOTE}\nThe session is saved in $LATCHKEY_HOME/session.json (default ~/.config/latchkey/session.json),\nmode 0600.`,
  async run(ctx) {
    const { client, server } = await connect(ctx);
    const email = await emailArgument(ctx);
    const password = await ctx.prompt.secret('Password: ');
    const deviceName = ctx.args.string('device-name') ?? `latchkey CLI on ${hostname()}`.slice(0, 100);
    const path = sessionFilePath(ctx.env);
    const previous = loadPreviousSession(path);
    // The device token of this account's last login here: it passes the limits strangers can fill.
    const known = previous?.server === server && previous.email === normalizeEmail(email) ? previous : undefined;
    const deviceToken = known?.deviceToken;
    const session = await client.logIn(email, password, {
      deviceName,
      ...(deviceToken === undefined ? {} : { deviceToken }),
    });
    // The CLI keeps no key between runs; the commands that need kA or kB prove the password again.
    session.forgetKeys();
    saveSession(path, { server, ...session.state });
    // Keys unlocked for the previous login are not this one's.
    endUnlock(ctx);
    if (previous !== undefined && previous.sessionId !== session.state.sessionId) await endQuietly(previous);
    const { accountId, sessionId, expiresAt } = session.state;
    ctx.out.result(
      { server, email, accountId, sessionId, expiresAt },
      `Logged in as ${email} on ${server} (session ${sessionId}, until ${formatTime(expiresAt)}).`,
    );
  },
};

/** Deletes the session file and locks: the unlocked keys (`latchkey unlock`) end with the login. */
function endSession(ctx: CommandContext, path: string): void {
  endUnlock(ctx);
  clearSession(path);
}

function endUnlock(ctx: CommandContext): void {
  lockFile(unlockedFilePath(ctx.env));
}

function loadPreviousSession(path: string): SavedSession | undefined {
  try {
    return loadSession(path);
  } catch {
    return undefined;
  }
}

/** Ends a replaced session on its server, best effort: its token should not outlive the file. */
async function endQuietly(saved: SavedSession): Promise<void> {
  try {
    await new LatchkeyClient({ serverUrl: saved.server }).resume({ ...saved }).logOut();
  } catch {
    // Unreachable or already gone: it expires on its own, and `account sessions` can revoke it.
  }
}

const logout: Command = {
  name: 'account logout',
  summary: 'End the saved session on the server and delete the session file',
  options: { ...SERVER },
  async run(ctx) {
    const path = sessionFilePath(ctx.env);
    if (loadPreviousSession(path) === undefined) {
      endSession(ctx, path);
      ctx.out.result({ loggedOut: false }, 'Not logged in.');
      return;
    }
    const { session, saved } = resumeSession(ctx);
    // If the server cannot be reached the file stays, so the token can still be ended later.
    await session.logOut();
    endSession(ctx, path);
    ctx.out.result({ loggedOut: true, sessionId: saved.sessionId }, `Logged out of ${saved.email}.`);
  },
};

const whoami: Command = {
  name: 'account whoami',
  summary: 'Show the account of the saved session',
  options: { ...SERVER },
  async run(ctx) {
    const { session, saved } = resumeSession(ctx);
    const account = await session.account();
    const data = { server: saved.server, sessionId: saved.sessionId, sessionExpiresAt: saved.expiresAt, ...account };
    const human = columns([
      ['email', account.email],
      ['account', account.accountId],
      ['verified', account.verified ? 'yes' : 'no'],
      ['created', formatTime(account.createdAt)],
      ['password changed', formatTime(account.passwordChangedAt)],
      ['keys changed', formatTime(account.keysChangedAt)],
      ['session', `${saved.sessionId} (until ${formatTime(saved.expiresAt)})`],
      ['server', saved.server],
    ]).join('\n');
    ctx.out.result(data, human);
  },
};

const passwd: Command = {
  name: 'account passwd',
  summary: 'Change the password; kB stays the same, every other session ends',
  options: { ...SERVER, ...PASSWORD_STDIN },
  details: `${STDIN_NOTE}\nOrder: current password, new password, new password again.`,
  async run(ctx) {
    const { session, saved, path } = await resumeReachable(ctx);
    const current = await ctx.prompt.secret('Current password: ');
    const next = await newPassword(ctx, 'New password');
    try {
      const { revokedSessions } = await session.changePassword(current, next);
      saveSession(path, { server: saved.server, ...session.state });
      ctx.out.result(
        { revokedSessions },
        `Password changed. ${revokedSessions} other session${revokedSessions === 1 ? '' : 's'} ended.`,
      );
    } finally {
      session.forgetKeys();
    }
  },
};

const reset: Command = {
  name: 'account reset',
  summary: 'Reset a forgotten password with an emailed code (kB is replaced, kA kept)',
  positionals: { usage: '[EMAIL]', max: 1 },
  options: {
    ...SERVER,
    code: { type: 'string', value: 'CODE', description: 'the code already received (skips mailing a new one)' },
    'send-only': { type: 'boolean', description: 'only mail the code; finish later with --code' },
    ...PASSWORD_STDIN,
  },
  details:
    `${STDIN_NOTE}\nOrder: code (unless --code), new password, new password again.\n` +
    'A reset makes a new kB: data encrypted under the old one opens only with a recovery key.',
  async run(ctx) {
    const given = ctx.args.string('code');
    if (given !== undefined && ctx.args.flag('send-only')) throw usageError('give --code or --send-only, not both');
    const { client, server } = await connect(ctx);
    const email = await emailArgument(ctx);
    if (given === undefined) {
      await client.requestReset(email);
      const sent = `If ${email} has an account, a code was sent to it.`;
      if (ctx.args.flag('send-only')) {
        ctx.out.result({ email, codeRequested: true }, `${sent} Finish: latchkey account reset ${email} --code CODE`);
        return;
      }
      ctx.out.hint(sent);
    }
    const code = given ?? (await ctx.prompt.ask('Code from the email: '));
    const password = await newPassword(ctx, 'New password');
    const { keysChangedAt } = await client.completeReset(email, code, password);
    // A reset ends every session of the account, the saved one included.
    const path = sessionFilePath(ctx.env);
    const saved = loadPreviousSession(path);
    if (saved !== undefined && saved.email === email && saved.server === server) endSession(ctx, path);
    ctx.out.result(
      { email, keysChangedAt },
      'Password reset; every session of the account has ended. Log in again.\n' +
        'kB is new: data encrypted under the old kB opens only with a recovery key.',
    );
  },
};

const deleteAccount: Command = {
  name: 'account delete',
  summary: 'Delete the account and everything the server holds for it',
  options: {
    ...SERVER,
    yes: { type: 'boolean', short: 'y', description: 'do not ask to type the email address to confirm' },
    ...PASSWORD_STDIN,
  },
  details: `${STDIN_NOTE}\nOrder: the email address (unless --yes), then the password.`,
  async run(ctx) {
    const { session, saved, path } = await resumeReachable(ctx);
    if (!ctx.args.flag('yes')) {
      ctx.out.hint(`This deletes ${saved.email} and everything the server holds for it. It cannot be undone.`);
      const typed = await ctx.prompt.ask(`Type ${saved.email} to confirm: `);
      if (typed.trim().toLowerCase() !== saved.email) {
        throw new LatchkeyError('LK_CANCELLED', 'The address typed does not match; nothing was deleted.');
      }
    }
    const password = await ctx.prompt.secret('Password: ');
    await session.deleteAccount(password);
    endSession(ctx, path);
    ctx.out.result(
      { deleted: true, accountId: saved.accountId, email: saved.email },
      `Account ${saved.email} deleted.`,
    );
  },
};

const sessions: Command = {
  name: 'account sessions',
  summary: "List the account's sessions, or end one with --revoke",
  options: {
    ...SERVER,
    revoke: { type: 'string', value: 'ID', description: 'end the session with this id' },
  },
  async run(ctx) {
    const { session, saved, path } = resumeSession(ctx);
    const revoke = ctx.args.string('revoke');
    if (revoke !== undefined) {
      await session.revokeSession(revoke);
      const current = revoke === saved.sessionId;
      if (current) endSession(ctx, path);
      ctx.out.result(
        { revoked: revoke, current },
        `Session ${revoke} ended${current ? ' (this one: logged out)' : ''}.`,
      );
      return;
    }
    const list = await session.listSessions();
    ctx.out.result({ sessions: list }, sessionTable(list));
  },
};

function sessionTable(list: readonly SessionSummary[]): string {
  return list
    .map((s) => {
      const name = s.deviceName ?? s.userAgent ?? 'unnamed';
      const marker = s.current ? '*' : ' ';
      return `${marker} ${s.sessionId}  ${name}\n    last used ${formatTime(s.lastUsedAt)}, until ${formatTime(s.expiresAt)}`;
    })
    .join('\n');
}

/** The `latchkey account …` commands. */
export const accountCommands: readonly Command[] = [
  signup,
  verify,
  login,
  logout,
  whoami,
  passwd,
  reset,
  deleteAccount,
  sessions,
];
