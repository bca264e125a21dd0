import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64Url, hashToken, LatchkeyError, type MasterKey, macCode } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../../../test/support/postgres.js';
import type { ServerContext } from '../src/context.js';
import { resetVerify, verifyEmail } from '../src/modules/accounts/service.js';
import { connect } from '../src/store/database.js';
import { openStore } from '../src/store/kysely-store.js';
import type { AccountRow } from '../src/store/schema.js';
import type { Store } from '../src/store/store.js';

/**
 * Issue 7, the race in email verification: a sign-up that replaces an unverified account (same email)
 * lands just as the old account's code is being used. The code proves the mailbox for the account it was
 * mailed for; it must never verify the account that replaced it, whose password someone else may have
 * chosen. The interleaving is forced: the sign-up runs right after the verification burns the code, or,
 * when the burn happens inside a transaction, at the moment that transaction starts.
 */

const NOW = 1_750_000_000_000;
const EMAIL = 'owner@example.com';
const CODE = '12345678';
const masterKey = new Uint8Array(32).fill(7) as MasterKey;

function account(id: string): AccountRow {
  const bytes = new Uint8Array(32).fill(1);
  return {
    id,
    email: EMAIL,
    verified_at: null,
    created_at: NOW,
    credential_id: `cid:${id}`,
    opaque_record: bytes,
    wrap_kb: bytes,
    ka_sealed: bytes,
    keys_changed_at: NOW,
    password_changed_at: NOW,
  };
}

/** What `register` does to an unverified account with the same email, in its transaction. */
async function replacingSignUp(store: Store): Promise<void> {
  await store.transaction(async (tx) => {
    const existing = await tx.findAccountByEmail(EMAIL);
    if (existing?.verified_at != null) throw new LatchkeyError('LK_EMAIL_TAKEN');
    if (existing !== undefined) await tx.deleteAccount(existing.id, existing.email, { keepRateLimits: true });
    await tx.insertAccount(account('acc-replacing'));
  });
}

/** The store, with the competing sign-up run once the code is burned (or the burning transaction starts). */
function racedStore(store: Store, signUps: Promise<unknown>[]): Store {
  let fired = false;
  const signUp = () => {
    if (fired) return;
    fired = true;
    signUps.push(replacingSignUp(store).catch((error: unknown) => error));
  };
  return new Proxy(store, {
    get(target, property) {
      if (property === 'deleteCode') {
        return async (id: string) => {
          const deleted = await target.deleteCode(id);
          signUp();
          await Promise.all(signUps);
          return deleted;
        };
      }
      if (property === 'transaction') {
        return (work: (tx: Store) => Promise<unknown>) => {
          signUp();
          return target.transaction(work);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const databaseUrlFor = {
  sqlite: (dir: string) => Promise.resolve(`sqlite:${join(dir, 'verify.db')}`),
  postgres: () => createTestDatabase(inject('postgresUrl'), 'verify_race'),
} as const;

describe.each(['sqlite', 'postgres'] as const)('verification racing a replacing sign-up (%s)', (backend) => {
  let dir: string;
  let store: Store;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `latchkey-verify-${backend}-`));
    store = await openStore(connect(await databaseUrlFor[backend](dir)));
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("never verifies the account that replaced the code's own", async () => {
    await store.insertAccount(account('acc-original'));
    await store.replaceCode({
      id: 'code-original',
      email: EMAIL,
      purpose: 'verify',
      code_mac: macCode(masterKey, { purpose: 'verify', email: EMAIL, accountId: 'acc-original' }, CODE),
      attempts: 0,
      expires_at: NOW + 600_000,
    });
    const signUps: Promise<unknown>[] = [];
    const ctx = { store: racedStore(store, signUps), masterKey, now: () => NOW } as unknown as ServerContext;

    const verified = await verifyEmail(ctx, EMAIL, CODE).then(
      () => 'ok',
      (error: unknown) => (error instanceof LatchkeyError ? error.code : error),
    );
    const [signUp] = await Promise.all(signUps);
    expect(signUps).toHaveLength(1);

    const now = await store.findAccountByEmail(EMAIL);
    // Either order is an answer: verified first (the sign-up finds the email taken), or replaced first
    // (the code went with the old account). Never the new account verified by the old account's code.
    if (verified === 'ok') {
      expect(now).toMatchObject({ id: 'acc-original', verified_at: NOW });
      expect(signUp).toMatchObject({ code: 'LK_EMAIL_TAKEN' });
    } else {
      expect(verified).toBe('LK_CODE_INVALID');
      expect(now).toMatchObject({ id: 'acc-replacing', verified_at: null });
    }
  });

  // Issue 8: the same race for a reset code (an unverified account can be reset, and replaced). The code
  // was checked, then the account looked up by email apart: the token went to the replacing account.
  it("never trades a reset code for a token of the account that replaced the code's own", async () => {
    const left = await store.findAccountByEmail(EMAIL);
    if (left !== undefined) await store.deleteAccount(left.id, EMAIL);
    await store.insertAccount(account('acc-original'));
    await store.replaceCode({
      id: 'code-reset',
      email: EMAIL,
      purpose: 'reset',
      code_mac: macCode(masterKey, { purpose: 'reset', email: EMAIL, accountId: 'acc-original' }, CODE),
      attempts: 0,
      expires_at: NOW + 600_000,
    });
    const signUps: Promise<unknown>[] = [];
    const random = (length: number) => crypto.getRandomValues(new Uint8Array(length));
    const ctx = { store: racedStore(store, signUps), masterKey, now: () => NOW, random } as unknown as ServerContext;

    const traded = await resetVerify(ctx, EMAIL, CODE).then(
      ({ resetToken }) => resetToken,
      (error: unknown) => (error instanceof LatchkeyError ? error.code : error),
    );
    await Promise.all(signUps);
    expect(signUps).toHaveLength(1);
    expect(await store.findAccountByEmail(EMAIL)).toMatchObject({ id: 'acc-replacing' });
    // Either order is an answer: the token issued first for the code's own account (and gone with it),
    // or the code gone with its account. Never a token of the account that replaced it.
    if (traded === 'LK_CODE_INVALID') return;
    expect(typeof traded).toBe('string');
    const token = await store.findResetToken(hashToken(fromBase64Url(String(traded), 'resetToken')), NOW);
    expect(token?.account_id ?? 'gone with its account').not.toBe('acc-replacing');
  });
});
