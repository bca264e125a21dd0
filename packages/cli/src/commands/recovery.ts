import { decodeRecoveryKey, LatchkeyError } from '@latchkey/core';
import type { Command } from '../command.js';
import { PASSWORD_STDIN, SERVER, STDIN_NOTE } from './account.js';
import { newPassphrase, recoveryKeyText, withUnlockedDevice } from './device.js';

const showNew: Command = {
  name: 'recovery show-new',
  summary: 'Make a new recovery key that replaces the old one, and show it once',
  options: {
    ...SERVER,
    passphrase: {
      type: 'boolean',
      description: 'derive the new key from a new passphrase (asked for twice), so either restores',
    },
    ...PASSWORD_STDIN,
  },
  details:
    `${STDIN_NOTE}\nOrder: password (even when unlocked: writing over the stored backup key needs a fresh\n` +
    'password check), then (with --passphrase) the new passphrase, and again.\n' +
    'The backup itself does not change. The old recovery key, and any old passphrase, stop working at\n' +
    'once. It works from a device logged in with the password, so a lost recovery key can be replaced.',
  async run(ctx) {
    await withUnlockedDevice(ctx, async ({ backup, password, passwordIfStale }) => {
      // Asked for even when unlocked, before the passphrase: the server replaces the stored key only
      // after a recent password check.
      await password();
      const usePassphrase = ctx.args.flag('passphrase');
      const secret = usePassphrase ? await newPassphrase(ctx, 'New backup passphrase') : undefined;
      const accountPassword = await passwordIfStale();
      const { version, recoveryKey } = await backup.replaceRecoveryKey({
        ...(accountPassword === undefined ? {} : { password: accountPassword }),
        ...(secret === undefined ? {} : { passphrase: secret }),
      });
      ctx.out.result(
        { version, recoveryKey, passphrase: usePassphrase },
        recoveryKeyText(
          `The recovery key of backup version ${version} is replaced; the old one no longer works.`,
          recoveryKey,
          usePassphrase,
        ),
      );
    });
  },
};

const verify: Command = {
  name: 'recovery verify',
  summary: 'Check that a recovery key is the one for this account (nothing is decrypted or changed)',
  positionals: { usage: '[KEY]', max: 1 },
  options: { ...SERVER, ...PASSWORD_STDIN },
  details:
    `${STDIN_NOTE}\nOrder: password, then the recovery key (unless given as KEY: quote it, it has spaces;\n` +
    'and on the command line other users of this machine can see it).\n' +
    "A key that is not this account's is LK_BAD_RECOVERY_KEY (exit status 1), as is a mistyped one,\n" +
    'whose details.reason says which check failed (empty, case, base58, length, prefix, parity).\n' +
    "When the account's key description has no key check (iv/mac), nothing can tell: that is\n" +
    'LK_RECOVERY_KEY_UNCHECKABLE (exit status 1); a restore with the key still fails safely if it is wrong.',
  async run(ctx) {
    const given = ctx.args.positional(0);
    // A mistyped key fails here, before the password is asked for.
    if (given !== undefined) decodeRecoveryKey(given).fill(0);
    await withUnlockedDevice(ctx, async ({ backup }) => {
      const recoveryKey = given ?? (await ctx.prompt.secret('Recovery key: '));
      const check = await backup.verifyRecoveryKey(recoveryKey);
      // Never reported as valid: a server that strips the key check must not make every key pass.
      if (check === 'cannot-check') throw new LatchkeyError('LK_RECOVERY_KEY_UNCHECKABLE');
      if (check === 'invalid') {
        throw new LatchkeyError(
          'LK_BAD_RECOVERY_KEY',
          "Invalid: that recovery key is well formed, but it is not this account's.",
          { reason: 'mismatch' },
        );
      }
      ctx.out.result({ valid: true }, "Valid: this is the account's recovery key.");
    });
  },
};

/** The `latchkey recovery …` commands. */
export const recoveryCommands: readonly Command[] = [showNew, verify];
