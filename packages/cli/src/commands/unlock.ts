import { type Command, usageError } from '../command.js';
import { formatTime } from '../output.js';
import { lockFile, SESSION_VARIABLE, sealUnlocked, unlockedFilePath } from '../unlock.js';
import { PASSWORD_STDIN, resumeReachable, SERVER, STDIN_NOTE } from './account.js';

const UNITS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DEFAULT_EXPIRY = '1h';
/** The longest unlock: a day. Past it a stolen environment variable should be worth nothing. */
const MAX_EXPIRY_MS = UNITS.d;

/** `30m`, `1h`, `90s`, `1d` → milliseconds, between 1 s and a day. */
export function parseExpiry(text: string): number {
  const match = /^(\d{1,6})([smhd])$/.exec(text.trim());
  const ms = match === null ? Number.NaN : Number(match[1]) * UNITS[match[2] as keyof typeof UNITS];
  if (!(ms >= UNITS.s && ms <= MAX_EXPIRY_MS)) {
    throw usageError(`--expires ${JSON.stringify(text)}: give a duration such as 30m, 1h or 8h, at most 1d`);
  }
  return ms;
}

const unlock: Command = {
  name: 'unlock',
  summary:
    'Ask for the password once and print a LATCHKEY_SESSION for this shell, so backup and keys commands stop asking',
  options: {
    ...SERVER,
    expires: { type: 'string', value: 'DURATION', description: 'how long it lasts: 30m, 1h (default), 8h; at most 1d' },
    ...PASSWORD_STDIN,
  },
  details:
    `${STDIN_NOTE}\n` +
    'Prints `export LATCHKEY_SESSION="…"` (under --json, {"session","expiresAt"}): run it in the shell, for\n' +
    'example eval "$(npx latchkey unlock)". Until it expires, or `latchkey lock`, the backup, recovery and keys\n' +
    'commands of this login use it instead of asking for the password. kA and kB are kept in\n' +
    '$LATCHKEY_HOME/unlocked.json (mode 0600), encrypted under that session key, which is stored nowhere\n' +
    "else: the file alone opens nothing. Anyone who has both (this user's other programs) can act as you\n" +
    'until then. Account commands (passwd, delete) still ask for the password.',
  async run(ctx) {
    const lifetime = parseExpiry(ctx.args.string('expires') ?? DEFAULT_EXPIRY);
    const { session, saved } = await resumeReachable(ctx);
    try {
      await session.reauthenticate(await ctx.prompt.secret('Password: '));
      const createdAt = Date.now();
      // No unlock outlives the login it belongs to.
      const expiresAt = Math.min(createdAt + lifetime, saved.expiresAt);
      const header = {
        server: saved.server,
        accountId: saved.accountId,
        sessionId: saved.sessionId,
        createdAt,
        expiresAt,
      };
      const key = sealUnlocked(unlockedFilePath(ctx.env), header, session.kA, session.kB);
      ctx.out.result({ session: key, expiresAt }, `export ${SESSION_VARIABLE}="${key}"`);
      ctx.out.hint(
        `Unlocked until ${formatTime(expiresAt)}. Set ${SESSION_VARIABLE} in this shell (run the line above, or ` +
          `eval "$(npx latchkey unlock)"); \`latchkey lock\` ends it.`,
      );
    } finally {
      session.forgetKeys();
    }
  },
};

const lock: Command = {
  name: 'lock',
  summary: 'End the unlock: delete the sealed keys, so LATCHKEY_SESSION opens nothing',
  options: {},
  details: `Then unset ${SESSION_VARIABLE} too. Logging out (or in again) also locks.`,
  async run(ctx) {
    const locked = lockFile(unlockedFilePath(ctx.env));
    ctx.out.result({ locked }, locked ? `Locked. Now: unset ${SESSION_VARIABLE}` : 'Nothing was unlocked.');
  },
};

/** The `latchkey unlock` and `latchkey lock` commands. */
export const unlockCommands: readonly Command[] = [unlock, lock];
