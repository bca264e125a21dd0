import { type KeyBackup, type LocalKeystore, Session } from '@latchkey/client';
import { FRESH_AUTH_MS, LatchkeyError } from '@latchkey/core';
import type { CommandContext } from '../command.js';
import type { SavedSession } from '../state.js';
import { keystoreFilePath } from '../state.js';
import { openUnlocked, sessionKeyOf, unlockedFilePath } from '../unlock.js';
import { clientFor, resumeReachable } from './account.js';

/** The saved session with kA and kB in memory, this device's keystore open, and its key backup. */
export interface UnlockedDevice {
  session: Session;
  saved: SavedSession;
  keystore: LocalKeystore;
  backup: KeyBackup;
  /**
   * The account password, for deletes the server allows only after a recent password check: the one
   * typed for this command, else (unlocked with LATCHKEY_SESSION, where none was) asked for now.
   */
  password(): Promise<string>;
  /**
   * What to hand the backup as its `password` option, asked just before the delete or overwrite:
   * undefined while this command's own password check is fresh enough for the server to count it
   * (proving it again would run OPAQUE and Argon2id a second time for nothing), else the password.
   */
  passwordIfStale(): Promise<string | undefined>;
}

/**
 * How long this command's own password check is relied on for the server's freshness rule: half of
 * FRESH_AUTH_MS, so a slow step between our clock's reading and the server's still falls inside it.
 */
const RELY_ON_CHECK_MS = FRESH_AUTH_MS / 2;

/**
 * Brings kA and kB into memory for the saved session: from the unlocked keys when LATCHKEY_SESSION
 * is set (see `latchkey unlock`), else by proving the password again (the CLI keeps no key in clear
 * between runs). Then opens this device's keystore with kB and runs `work`. Whatever happens, the
 * keystore is closed (its keys wiped) and kA and kB are forgotten before this returns.
 */
export async function withUnlockedDevice<T>(
  ctx: CommandContext,
  work: (device: UnlockedDevice) => Promise<T>,
): Promise<T> {
  const resumed = await resumeReachable(ctx);
  const { saved } = resumed;
  const sessionKey = sessionKeyOf(ctx.env);
  let session: Session = resumed.session;
  if (sessionKey !== undefined) {
    const { kA, kB } = openUnlocked(unlockedFilePath(ctx.env), sessionKey, saved, Date.now());
    // The same saved session, with the keys the unlock sealed; no password check is needed to read
    // or write the backup, only to prove who is asking (the bearer token does that).
    session = new Session(clientFor(ctx.env, saved.server), { ...saved }, { kA, kB });
  }
  let typed: string | undefined;
  const password = async () => {
    typed ??= await ctx.prompt.secret('Password: ');
    return typed;
  };
  let provedAt: number | undefined;
  const passwordIfStale = async () =>
    provedAt !== undefined && Date.now() - provedAt < RELY_ON_CHECK_MS ? undefined : await password();
  try {
    if (sessionKey === undefined) {
      const started = Date.now();
      await session.reauthenticate(await password());
      provedAt = started;
    }
    const keystore = await openDeviceKeystore(session, keystoreFilePath(ctx.env, saved.accountId));
    try {
      const backup = session.keyBackup(keystore);
      return await work({ session, saved, keystore, backup, password, passwordIfStale });
    } finally {
      await keystore.close();
    }
  } finally {
    session.forgetKeys();
  }
}

/** Opens the keystore; a store sealed under an old kB says which commands get the keys back. */
async function openDeviceKeystore(session: Session, file: string): Promise<LocalKeystore> {
  try {
    return await session.openKeystore(file);
  } catch (error) {
    if (!(error instanceof LatchkeyError) || error.code !== 'LK_KEYSTORE_KEY_CHANGED') throw error;
    throw new LatchkeyError(
      'LK_KEYSTORE_KEY_CHANGED',
      'The password was reset since this device stored its keys, so nothing can read them now. Clear them with `latchkey keys clear`, then get them back with `latchkey backup restore`.',
      { file },
    );
  }
}

/** A passphrase asked for without echo, typed twice unless answers come from `--password-stdin`. */
export async function newPassphrase(ctx: CommandContext, label: string): Promise<string> {
  const passphrase = await ctx.prompt.secret(`${label}: `);
  checkPassphrase(passphrase);
  if (ctx.args.flag('password-stdin')) return passphrase;
  const again = await ctx.prompt.secret(`${label} again: `);
  if (again !== passphrase) throw new LatchkeyError('LK_PASSWORD_MISMATCH', 'The two passphrases differ.');
  return passphrase;
}

/** An existing passphrase, asked for once without echo. */
export async function passphrase(ctx: CommandContext, label: string): Promise<string> {
  const answer = await ctx.prompt.secret(`${label}: `);
  checkPassphrase(answer);
  return answer;
}

function checkPassphrase(passphrase: string): void {
  if (passphrase === '') throw new LatchkeyError('LK_CANCELLED', 'No passphrase given; nothing was changed.');
}

/**
 * A new recovery key as the person must see it: once, in its groups of four, with what it is for.
 * `origin` says how it came about (`Backup enabled: version 3.`).
 */
export function recoveryKeyText(origin: string, recoveryKey: string, passphrase: boolean): string {
  return [
    origin,
    '',
    'Your recovery key. Write it down (or keep it in a password manager) now: it is shown only this once.',
    '',
    `    ${recoveryKey}`,
    '',
    `With it${passphrase ? ' (or the passphrase)' : ''}, a new device gets your keys back if you lose this one.`,
    'The server never sees it and cannot show it again; `latchkey recovery show-new` replaces it.',
  ].join('\n');
}
