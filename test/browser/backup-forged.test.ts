import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transport } from '@latchkey/client';
import { type BackupVersionInfoBody, encryptForBackup, fromBase64, toBackupPlaintext, utf8 } from '@latchkey/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeMatrixCrypto as crypto } from '../../packages/client/src/platform/node-crypto.js';
import { makeRoomKey, makeRoomKeys } from '../support/room-keys.js';
import { createVerifiedAccount } from '../support/server.js';
import { logIn, openTab, useWebApp } from './harness.js';

/**
 * Issue 8 in the web app: a backup holding entries filed under a room or session not their own (as
 * whoever holds the backup's public key can write) is restored in Chromium, and the page says how many
 * were refused and what that means, beside the keys it took.
 */

const STEP_MS = 30_000;
const KEY_COUNT = 4;

const web = useWebApp();
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'latchkey-web-forged-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a tampered backup restored in the web app', () => {
  it('imports the honest keys and says how many entries were refused', async () => {
    const email = 'web-forged@example.com';
    const password = 'web forged password';
    await createVerifiedAccount(web.server, email, password);

    // Device A (the SDK in Node) backs up its keys; logged-in devices may restore.
    const node = await web.server.client().logIn(email, password, { deviceName: 'device A' });
    const a = await node.openKeystore(join(dir, 'a.db'));
    await a.addRoomKeys(makeRoomKeys(KEY_COUNT).map((key) => ({ key })));
    const backup = node.keyBackup(a);
    const { version } = await backup.enable();
    await backup.uploadPending();
    await a.close();

    // The attacker writes two misfiled entries, encrypted to the public key in auth_data.
    const transport = new Transport(web.server.url);
    const api = <T>(method: string, path: string, body?: unknown) =>
      transport.request<T>(method, path, { token: node.state.token, ...(body === undefined ? {} : { body }) });
    const info = await api<BackupVersionInfoBody>('GET', '/v1/backup/version');
    const publicKey = fromBase64(info.auth_data.public_key);
    const misfiled = makeRoomKey(7, 7);
    const elsewhere = makeRoomKey(8, 8);
    const entry = (plaintext: string) => ({
      first_message_index: 0,
      forwarded_count: 0,
      is_verified: true,
      session_data: encryptForBackup(crypto, publicKey, utf8(plaintext)),
    });
    await api('PUT', `/v1/backup/keys?version=${version}`, {
      rooms: {
        [misfiled.room_id]: {
          sessions: {
            [makeRoomKey(9, 9).session_id]: entry(toBackupPlaintext(misfiled)),
            [elsewhere.session_id]: entry(
              JSON.stringify({ ...JSON.parse(toBackupPlaintext(elsewhere)), room_id: elsewhere.room_id }),
            ),
          },
        },
      },
    });
    await node.logOut();

    const { context, page, errors } = await openTab(web, 'login', {
      stepMs: STEP_MS,
      viewport: { width: 1000, height: 1000 },
    });
    await logIn(page, email, password);
    await page.getByRole('link', { name: 'Key backup' }).click();
    await page.getByRole('heading', { name: 'Key backup' }).waitFor();
    await page.getByRole('button', { name: 'Restore using this login' }).click();
    const total = KEY_COUNT + 2;
    await page
      .getByTestId('restore-result')
      .filter({
        hasText:
          `Imported ${KEY_COUNT} of the ${total} keys in backup version ${version}; none failed. ` +
          '2 were refused: they are filed under a room or session that is not their own, so the server ' +
          '(or whoever wrote them) altered the backup.',
      })
      .waitFor();
    // Every key not refused was taken: no "already on this device" for keys that were refused.
    expect(await page.getByTestId('restore-result').textContent()).not.toContain('already on this device');
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);
});
