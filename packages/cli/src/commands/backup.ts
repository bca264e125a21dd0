import type { EnabledBackup, RecoverySecret } from '@latchkey/client';
import { decodeRecoveryKey, LatchkeyError } from '@latchkey/core';
import { type Command, type CommandContext, columns, usageError } from '../command.js';
import { formatCount } from '../progress.js';
import { PASSWORD_STDIN, SERVER, STDIN_NOTE } from './account.js';
import { newPassphrase, passphrase, recoveryKeyText, withUnlockedDevice } from './device.js';

const PASSPHRASE_NOTE = 'A passphrase is stretched with PBKDF2 (500,000 rounds) on purpose, so it takes a moment.';

const keys = (n: number) => `${formatCount(n)} key${n === 1 ? '' : 's'}`;

const enable: Command = {
  name: 'backup enable',
  summary: "Start backing up this account's room keys, encrypted; shows the recovery key once",
  options: {
    ...SERVER,
    passphrase: {
      type: 'boolean',
      description: 'derive the recovery key from a passphrase (asked for twice), so either restores',
    },
    replace: {
      type: 'boolean',
      description:
        'start a new backup even though one exists: its keys are first restored here (through the login), then it is deleted',
    },
    'old-recovery-key': {
      type: 'string',
      value: 'KEY',
      description: 'with --replace: open the old backup with its recovery key instead of the login',
    },
    'old-passphrase': {
      type: 'boolean',
      description: 'with --replace: open the old backup with its passphrase (asked for) instead of the login',
    },
    'discard-unreadable': {
      type: 'boolean',
      description:
        'with --replace: if the old backup cannot be opened, start over anyway and lose the keys only it holds',
    },
    ...PASSWORD_STDIN,
  },
  details:
    `${STDIN_NOTE}\nOrder: password (even when unlocked, with --replace or when an earlier backup left its keys\n` +
    'in secret storage: deleting the old backup or writing over its keys needs a fresh password check),\n' +
    "then (with --old-passphrase) the old backup's passphrase, then (with --passphrase) the new\n" +
    'passphrase, and again.\n' +
    'Devices logged in with the password can restore too (backup restore --trusted-device).\n' +
    "Replacing keeps the old backup's keys by restoring them here first; when the login no longer opens it\n" +
    '(after a password reset), give --old-recovery-key or --old-passphrase, or accept the loss with\n' +
    `--discard-unreadable. ${PASSPHRASE_NOTE}\nThen upload this device's keys: latchkey backup upload`,
  async run(ctx) {
    checkOldBackupFlags(ctx);
    await withUnlockedDevice(ctx, async ({ backup, password, passwordIfStale }) => {
      const existing = await backup.current();
      if (existing !== undefined && !ctx.args.flag('replace')) {
        throw new LatchkeyError(
          'LK_BACKUP_EXISTS',
          `Backup version ${existing.version} exists (${keys(existing.count)}); see \`latchkey backup status\`, ` +
            'or pass --replace to start a new one with a new recovery key.',
          { version: existing.version },
        );
      }
      // Replacing deletes the old backup, and enabling over an earlier backup's secret storage writes over
      // its keys: both need a recent password check, asked for first, as always. A first backup needs none.
      const replacesSomething = existing !== undefined || (await backup.enableReplaces());
      if (replacesSomething) await password();
      const carryOverWith = existing === undefined ? undefined : await oldBackupSecret(ctx);
      const usePassphrase = ctx.args.flag('passphrase');
      const secret = usePassphrase ? await newPassphrase(ctx, 'Backup passphrase') : undefined;
      const bar = ctx.out.progress();
      const enabled = await backup
        .enable({
          replace: existing !== undefined,
          discardUnreadable: ctx.args.flag('discard-unreadable'),
          onProgress: (p) => bar.update(p),
          ...(carryOverWith === undefined ? {} : { carryOverWith }),
          ...(secret === undefined ? {} : { passphrase: secret }),
          // Asked after the carry-over, which may take long: this command's check may be stale by then.
          ...(replacesSomething ? { password: passwordIfStale } : {}),
        })
        .finally(() => bar.end());
      const { version, recoveryKey, replaced } = enabled;
      ctx.out.result(
        { version, recoveryKey, passphrase: usePassphrase, ...(replaced === undefined ? {} : { replaced }) },
        `${replacedText(replaced)}${recoveryKeyText(`Backup enabled: version ${version}.`, recoveryKey, usePassphrase)}\n` +
          "Next, upload this device's keys: latchkey backup upload",
      );
    });
  },
};

/** The flags about the backup being replaced, checked before the password is asked for. */
function checkOldBackupFlags(ctx: CommandContext): void {
  const given = ['old-recovery-key', 'old-passphrase', 'discard-unreadable'].filter((name) => ctx.args.given(name));
  if (given.length > 0 && !ctx.args.flag('replace')) throw usageError(`--${given[0]} goes with --replace`);
  const oldKey = ctx.args.string('old-recovery-key');
  if (oldKey !== undefined && ctx.args.flag('old-passphrase')) {
    throw usageError('give one of --old-recovery-key, --old-passphrase');
  }
  if (oldKey !== undefined) decodeRecoveryKey(oldKey).fill(0);
}

/** How to open the backup being replaced, when not through the login: its recovery key or passphrase. */
async function oldBackupSecret(ctx: CommandContext): Promise<RecoverySecret | undefined> {
  const given = ctx.args.string('old-recovery-key');
  if (given !== undefined) return { recoveryKey: given };
  if (ctx.args.flag('old-passphrase')) return { passphrase: await passphrase(ctx, "The old backup's passphrase") };
  return undefined;
}

/** What became of the replaced backup's keys, for the person who chose to replace it. */
function replacedText(replaced: EnabledBackup['replaced']): string {
  if (replaced === undefined) return '';
  const lost = replaced.unreadable > 0 ? ` ${keys(replaced.unreadable)} could not be opened and are gone with it.` : '';
  return `Backup version ${replaced.version} was replaced and deleted; ${keys(replaced.carriedOver)} from it are now on this device.${lost}\n`;
}

const status: Command = {
  name: 'backup status',
  summary: "Show the backup's version, how many keys it holds, and what this device has yet to upload",
  options: { ...SERVER, ...PASSWORD_STDIN },
  details: `${STDIN_NOTE}\nThe password opens this device's keystore and checks the backup's signature.`,
  async run(ctx) {
    await withUnlockedDevice(ctx, async ({ backup }) => {
      const state = await backup.status();
      if (!state.enabled) {
        ctx.out.result({ enabled: false }, 'No backup. Start one: latchkey backup enable');
        return;
      }
      const { version, count, pending, trusted } = state;
      const human = columns([
        ['backup', `version ${version}`],
        ['on the server', keys(count)],
        ['to upload', `${keys(pending)} from this device${pending > 0 ? ' (latchkey backup upload)' : ''}`],
        ['trusted', trusted ? 'yes (signed by this account)' : 'NO: not signed by this account; nothing is uploaded'],
      ]).join('\n');
      ctx.out.result({ enabled: true, version, count, pending, trusted }, human);
    });
  },
};

const upload: Command = {
  name: 'backup upload',
  summary: "Upload this device's keys that the backup does not hold yet",
  options: { ...SERVER, ...PASSWORD_STDIN },
  details: `${STDIN_NOTE}\nInterrupted, it loses nothing: run it again to send the rest.`,
  async run(ctx) {
    await withUnlockedDevice(ctx, async ({ backup }) => {
      const bar = ctx.out.progress();
      const { uploaded, version } = await backup.uploadPending((p) => bar.update(p)).finally(() => bar.end());
      ctx.out.result(
        { uploaded, version },
        uploaded === 0
          ? `Nothing to upload: backup version ${version} holds every key of this device.`
          : `Uploaded ${keys(uploaded)} to backup version ${version}.`,
      );
    });
  },
};

const restore: Command = {
  name: 'backup restore',
  summary: 'Bring the backed-up keys to this device, with the recovery key, the passphrase or the login',
  options: {
    ...SERVER,
    'recovery-key': { type: 'string', value: 'KEY', description: 'the recovery key (else it is asked for)' },
    passphrase: { type: 'boolean', description: 'use the backup passphrase instead (asked for)' },
    'trusted-device': {
      type: 'boolean',
      description: 'use only the password login: works when the backup trusts logged-in devices',
    },
    ...PASSWORD_STDIN,
  },
  details:
    `${STDIN_NOTE}\nOrder: password, then the recovery key or passphrase (unless --recovery-key or\n` +
    '--trusted-device). A key on the command line can be seen by other users of this machine; prefer the\n' +
    `prompt. ${PASSPHRASE_NOTE}\nKeys this device already holds are kept unless the backup's are better.`,
  async run(ctx) {
    const given = ctx.args.string('recovery-key');
    const ways = [given !== undefined, ctx.args.flag('passphrase'), ctx.args.flag('trusted-device')];
    if (ways.filter(Boolean).length > 1) throw usageError('give one of --recovery-key, --passphrase, --trusted-device');
    // A mistyped key fails here, before the password is asked for.
    if (given !== undefined) decodeRecoveryKey(given).fill(0);
    await withUnlockedDevice(ctx, async ({ backup }) => {
      const secret = await recoverySecret(ctx, given);
      const bar = ctx.out.progress();
      const result = await backup.restore(secret, (p) => bar.update(p)).finally(() => bar.end());
      const { version, total, imported, failed, refused, refusals } = result;
      const skipped = total - imported - failed - refused;
      // Refusals are named only when there are some: a backup the server has not tampered with has none.
      const refusedText =
        refused > 0
          ? `, ${formatCount(refused)} refused as filed under another room or session (${Object.entries(refusals)
              .map(([reason, n]) => `${reason}: ${formatCount(n)}`)
              .join(', ')})`
          : '';
      ctx.out.result(
        { version, total, imported, failed, ...(refused > 0 ? { refused, refusals } : {}) },
        `Restored from backup version ${version}: ${keys(imported)} imported` +
          `${skipped > 0 ? `, ${formatCount(skipped)} already held` : ''}` +
          `${failed > 0 ? `, ${formatCount(failed)} failed to decrypt` : ''}${refusedText} (of ${formatCount(total)}).`,
      );
    });
  },
};

async function recoverySecret(ctx: CommandContext, given: string | undefined): Promise<RecoverySecret> {
  if (ctx.args.flag('trusted-device')) return { trustedDevice: true };
  if (ctx.args.flag('passphrase')) return { passphrase: await passphrase(ctx, 'Backup passphrase') };
  return { recoveryKey: given ?? (await ctx.prompt.secret('Recovery key: ')) };
}

const deleteBackup: Command = {
  name: 'backup delete',
  summary: 'Delete the backup and every key it holds from the server (keys on this device stay)',
  options: {
    ...SERVER,
    yes: { type: 'boolean', short: 'y', description: 'do not ask to confirm' },
    ...PASSWORD_STDIN,
  },
  details:
    `${STDIN_NOTE}\nOrder: password, then "yes" to confirm (unless --yes).\n` +
    'The password is asked for even when unlocked (latchkey unlock): the server deletes only after a fresh password check.',
  async run(ctx) {
    await withUnlockedDevice(ctx, async ({ backup, password, passwordIfStale }) => {
      const info = await backup.current();
      if (info === undefined) throw new LatchkeyError('LK_BACKUP_NOT_FOUND', 'There is no backup to delete.');
      // Deleting needs a recent password check; asked for even when unlocked, and before the confirmation.
      await password();
      if (!ctx.args.flag('yes')) {
        ctx.out.hint('Deleting cannot be undone; keys not on any device are lost with it.');
        const answer = await ctx.prompt.ask(
          `Delete backup version ${info.version} and the ${keys(info.count)} it holds? Type yes: `,
        );
        if (answer.trim().toLowerCase() !== 'yes') {
          throw new LatchkeyError('LK_CANCELLED', 'Not confirmed; nothing was deleted.');
        }
      }
      // After the confirmation, which may have waited long enough for this command's check to go stale.
      const accountPassword = await passwordIfStale();
      await backup.delete(info.version, accountPassword === undefined ? {} : { password: accountPassword });
      ctx.out.result(
        { deleted: true, version: info.version },
        `Backup version ${info.version} deleted. Keys on this device are kept.`,
      );
    });
  },
};

/** The `latchkey backup …` commands. */
export const backupCommands: readonly Command[] = [enable, status, upload, restore, deleteBackup];
