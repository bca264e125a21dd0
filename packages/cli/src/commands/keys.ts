import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { exportRoomKeys, importRoomKeys, LocalKeystore } from '@latchkey/client';
import { DEFAULT_EXPORT_ROUNDS, LatchkeyError } from '@latchkey/core';
import { type Command, type CommandContext, usageError } from '../command.js';
import { formatCount } from '../progress.js';
import { keystoreFilePath } from '../state.js';
import { PASSWORD_STDIN, resumeSession, SERVER, STDIN_NOTE } from './account.js';
import { newPassphrase, passphrase, withUnlockedDevice } from './device.js';

const FORMAT_NOTE =
  'The file is a Matrix key export (-----BEGIN MEGOLM SESSION DATA-----), which Element and other\n' +
  'Matrix clients read and write; its passphrase is stretched with PBKDF2 (500,000 rounds).';

/** Shown (not under `--json`) while the passphrase is stretched: a fixed wait the bar cannot count. */
const STRETCHING = 'Stretching the passphrase…';

const keys = (n: number) => `${formatCount(n)} key${n === 1 ? '' : 's'}`;

function fileArgument(ctx: CommandContext, command: string): string {
  const file = ctx.args.positional(0);
  if (file === undefined || file === '') throw usageError(`which file? (see latchkey ${command} --help)`);
  return file;
}

function fileExists(file: string): LatchkeyError {
  return new LatchkeyError('LK_FILE_EXISTS', `${file} exists; pass --force to replace it.`, { file });
}

/**
 * Writes `text` to `file` with mode 0600, whole or not at all: into a fresh file beside it, flushed to
 * disk, then moved into place. Without `overwrite`, the move is a hard link, which fails if the name
 * exists, so a file created meanwhile is never replaced.
 */
export function writeFileAtomically(file: string, text: string, overwrite: boolean): void {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (overwrite) {
      renameSync(temporary, file);
      return;
    }
    try {
      linkSync(temporary, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw fileExists(file);
      throw error;
    }
  } finally {
    rmSync(temporary, { force: true });
  }
}

/** The file's text; a missing or unreadable file is `LK_FILE_UNREADABLE` naming the file and the reason. */
function readKeyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'EIO';
    const why = reason === 'ENOENT' ? 'no such file' : reason === 'EACCES' ? 'permission denied' : reason;
    throw new LatchkeyError('LK_FILE_UNREADABLE', `Cannot read ${file}: ${why}.`, { file, reason });
  }
}

const exportKeys: Command = {
  name: 'keys export',
  summary: "Write this device's room keys to a passphrase-protected key export file",
  positionals: { usage: 'FILE', max: 1 },
  options: {
    ...SERVER,
    force: { type: 'boolean', description: 'replace FILE if it exists' },
    ...PASSWORD_STDIN,
  },
  details:
    `${STDIN_NOTE}\nOrder: password, then the file's passphrase, and again.\n${FORMAT_NOTE}\n` +
    'The file is written whole (or not at all) with mode 0600. Keys marked ephemeral are never exported.',
  async run(ctx) {
    const file = fileArgument(ctx, 'keys export');
    const overwrite = ctx.args.flag('force');
    // Checked again when the file is moved into place; this only saves typing the passphrase in vain.
    if (!overwrite && existsSync(file)) throw fileExists(file);
    await withUnlockedDevice(ctx, async ({ keystore }) => {
      const secret = await newPassphrase(ctx, 'Passphrase for the file');
      const bar = ctx.out.progress();
      const { text, count } = await exportRoomKeys(keystore, secret, DEFAULT_EXPORT_ROUNDS, {
        onProgress: (p) => bar.update(p),
        onStretch: () => {
          // The keys are read: end the bar's line so the status line starts on its own.
          bar.end();
          ctx.out.hint(STRETCHING);
        },
      }).finally(() => bar.end());
      writeFileAtomically(file, text, overwrite);
      ctx.out.result({ file, exported: count }, `Exported ${keys(count)} to ${file}.`);
    });
  },
};

const importKeys: Command = {
  name: 'keys import',
  summary: 'Add the room keys of a key export file to this device',
  positionals: { usage: 'FILE', max: 1 },
  options: { ...SERVER, ...PASSWORD_STDIN },
  details:
    `${STDIN_NOTE}\nOrder: password, then the file's passphrase.\n${FORMAT_NOTE}\n` +
    "Keys this device already holds are kept unless the file's are better. A wrong passphrase imports\n" +
    'nothing (LK_KEY_EXPORT_BAD_PASSPHRASE). Then: latchkey backup upload',
  async run(ctx) {
    const file = fileArgument(ctx, 'keys import');
    const text = readKeyFile(file);
    await withUnlockedDevice(ctx, async ({ keystore }) => {
      const secret = await passphrase(ctx, "The file's passphrase");
      const bar = ctx.out.progress();
      const {
        total,
        imported,
        refused = 0,
        refusals = {},
      } = await importRoomKeys(keystore, text, secret, {
        onProgress: (p) => bar.update(p),
        onStretch: () => ctx.out.hint(STRETCHING),
      }).finally(() => bar.end());
      const others = total - imported - refused;
      // Refusals are named only when there are some: an honest file has none.
      const refusedText =
        refused > 0
          ? `; ${formatCount(refused)} refused as labelled with another session (${Object.entries(refusals)
              .map(([reason, n]) => `${reason}: ${formatCount(n)}`)
              .join(', ')})`
          : '';
      ctx.out.result(
        { file, total, imported, ...(refused > 0 ? { refused, refusals } : {}) },
        `Imported ${keys(imported)} from ${file}` +
          `${others > 0 ? ` (${formatCount(others)} already held or unusable)` : ''}${refusedText}.`,
      );
    });
  },
};

const clearKeys: Command = {
  name: 'keys clear',
  summary: "Delete this device's keystore for the logged-in account (the server's backup stays)",
  options: { yes: { type: 'boolean', short: 'y', description: 'do not ask to confirm' } },
  details:
    'For a keystore that LK_KEYSTORE_KEY_CHANGED says nothing can read (the password was reset), or to\n' +
    'leave no keys on this machine. It needs no password and does not touch the server. Order: "yes" to\n' +
    'confirm (unless --yes). Then: latchkey backup restore',
  async run(ctx) {
    const { saved } = resumeSession(ctx);
    const file = keystoreFilePath(ctx.env, saved.accountId);
    if (!ctx.args.flag('yes')) {
      ctx.out.hint('Keys only on this device (not in the backup, not exported) are lost with it.');
      const answer = await ctx.prompt.ask(`Delete the keystore of ${saved.email} on this device? Type yes: `);
      if (answer.trim().toLowerCase() !== 'yes') {
        throw new LatchkeyError('LK_CANCELLED', 'Not confirmed; nothing was deleted.');
      }
    }
    const existed = existsSync(file);
    await LocalKeystore.erase(file);
    ctx.out.result(
      { file, cleared: existed },
      existed ? `Deleted ${file}. Restore your keys: latchkey backup restore` : 'This device holds no keystore.',
    );
  },
};

/** The `latchkey keys …` commands. */
export const keysCommands: readonly Command[] = [exportKeys, importKeys, clearKeys];
