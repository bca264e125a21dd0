import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportRoomKeys, importRoomKeys, type LocalKeystore, type RoomKey } from '@latchkey/client';
import { FRESH_AUTH_MS, fromBase64 } from '@latchkey/core';
import type { Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRoomKeys } from '../support/room-keys.js';
import { createVerifiedAccount } from '../support/server.js';
import { alertWith, inView, logIn, openTab, section, statusLog, statusWith, useWebApp } from './harness.js';

const SCREENSHOT = '/tmp/latchkey-web-backup.png';
const KEY_SCREENSHOT = '/tmp/latchkey-web-backup-key.png';
const RESTORE_SCREENSHOT = '/tmp/latchkey-web-backup-restore.png';
const BACKGROUND_SCREENSHOT = '/tmp/latchkey-web-backup-background.png';
const LOGOUT_SCREENSHOT = '/tmp/latchkey-web-logout-warning.png';
/** One UI step; PBKDF2 with 500,000 rounds runs in the page for the passphrase steps, a few seconds. */
const STEP_MS = 30_000;
const KEY_COUNT = 36;
/** A recovery key of the right form (prefix, parity) that opens nothing here: the SDK test's. */
const FOREIGN_RECOVERY_KEY = 'EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d';

/** Added to the server's clock: past FRESH_AUTH_MS, every session's password check is stale. */
let skew = 0;
const web = useWebApp({ now: () => Date.now() + skew });
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'latchkey-web-backup-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A device: a browser context of its own, so its own sessionStorage and its own (empty) IndexedDB. */
const openDevice = () =>
  openTab(web, 'login', { stepMs: STEP_MS, viewport: { width: 1000, height: 1000 }, downloadsAndClipboard: true });

/** Logs in and opens the backup screen from the account screen's link. */
async function openBackup(page: Page, email: string, password: string): Promise<void> {
  await logIn(page, email, password);
  await page.getByRole('link', { name: 'Key backup' }).click();
  await page.getByRole('heading', { name: 'Key backup' }).waitFor();
  expect(await page.locator('#screen').getAttribute('data-route')).toBe('backup');
}

/** Waits until the fact `testId` (a `<dd>` of the status list) reads exactly `text`. */
async function factIs(page: Page, testId: string, text: string): Promise<void> {
  await page
    .getByTestId(testId)
    .filter({ hasText: new RegExp(`^${text}$`) })
    .waitFor();
}

/** Clicks `button` and returns the bytes of the file the page downloads. */
async function downloadOf(page: Page, button: string): Promise<{ file: Download; bytes: Buffer }> {
  const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: button }).click()]);
  const path = await file.path();
  return { file, bytes: readFileSync(path) };
}

/** How many records the page's IndexedDB keystore holds: the store itself, not what the app says. */
function storedRecords(page: Page, accountId: string): Promise<number> {
  return page.evaluate(
    (name) =>
      new Promise<number>((resolve, reject) => {
        const open = indexedDB.open(name);
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const db = open.result;
          if (!db.objectStoreNames.contains('records')) return resolve(0);
          const count = db.transaction('records').objectStore('records').count();
          count.onsuccess = () => {
            resolve(count.result);
            db.close();
          };
          count.onerror = () => reject(count.error);
        };
      }),
    `latchkey-keystore-${accountId}`,
  );
}

/** Keys in a stable order, for comparing sets of keys from different stores. */
const sorted = (keys: RoomKey[]) =>
  [...keys].sort((a, b) => `${a.room_id}|${a.session_id}`.localeCompare(`${b.room_id}|${b.session_id}`));

async function keysIn(keystore: LocalKeystore): Promise<RoomKey[]> {
  return sorted((await keystore.persistedRoomKeys()).map((stored) => stored.key));
}

/** Equal as objects, and each session key equal byte for byte (the part that decrypts messages). */
function expectSameKeys(actual: RoomKey[], expected: RoomKey[]): void {
  expect(actual).toEqual(expected);
  actual.forEach((key, i) => {
    const want = expected[i] as RoomKey;
    expect(Buffer.from(fromBase64(key.session_key)).equals(Buffer.from(fromBase64(want.session_key)))).toBe(true);
    expect(fromBase64(key.session_key)).toHaveLength(165);
  });
}

describe('key backup in the web app, in Chromium', () => {
  it('backs up on one device, restores on a fresh one with the recovery key, and refuses a wrong key', async () => {
    const email = 'web-backup@example.com';
    const password = 'backup web password';
    const backupPassphrase = 'a passphrase for the backup';
    const filePassphrase = 'export file passphrase';
    const { accountId } = await createVerifiedAccount(web.server, email, password);

    // The keys another Matrix client would hand over: an export file made by the SDK in Node.
    const keys = sorted(makeRoomKeys(KEY_COUNT, 12));
    const node = await web.server.client().logIn(email, password, { deviceName: 'key source' });
    const source = await node.openKeystore(join(dir, 'source.db'));
    expect(await source.addRoomKeys(keys.map((key) => ({ key })))).toBe(KEY_COUNT);
    const exportFile = await exportRoomKeys(source, filePassphrase, 1000);
    expect(exportFile.count).toBe(KEY_COUNT);
    await source.close();

    // Device A imports the file: a wrong passphrase is refused with its code and adds nothing.
    const a = await openDevice();
    await openBackup(a.page, email, password);
    await factIs(a.page, 'backup-state', 'Off: nothing is backed up yet');
    await factIs(a.page, 'device-count', '0');
    const file = { name: 'element-keys.txt', mimeType: 'text/plain', buffer: Buffer.from(exportFile.text) };
    await a.page.getByLabel('Key export file').setInputFiles(file);
    await a.page.getByLabel('File passphrase').fill('not the file passphrase');
    await a.page.getByRole('button', { name: 'Import keys' }).click();
    expect(await alertWith(a.page, 'LK_KEY_EXPORT_BAD_PASSPHRASE', section(a.page, 'Keys on this device'))).toBe(
      'The key export file does not open with this passphrase.',
    );
    expect(await storedRecords(a.page, accountId)).toBe(0);
    await a.page.getByLabel('File passphrase').fill(filePassphrase);
    await a.page.getByRole('button', { name: 'Import keys' }).click();
    // Progress and result show in the panel of the form, beside its button: where the user is looking.
    const keysPanel = section(a.page, 'Keys on this device');
    const imported = `Imported ${KEY_COUNT} of the ${KEY_COUNT} keys in element-keys.txt.`;
    await statusWith(a.page, imported, keysPanel);
    expect(await inView(a.page, keysPanel.getByRole('status').filter({ hasText: imported }))).toBe(true);
    expect(await a.page.locator('#status').isHidden()).toBe(true);
    expect(
      (await statusLog(a.page)).some(
        ({ where, text }) => where === 'Keys on this device' && text.startsWith('Decrypting the file…'),
      ),
    ).toBe(true);
    await factIs(a.page, 'device-count', String(KEY_COUNT));
    expect(await storedRecords(a.page, accountId)).toBe(KEY_COUNT);

    // Set up the backup with a passphrase; the recovery key is shown once, in 12 groups of 4.
    await a.page.getByLabel('New backup passphrase (optional)').fill(backupPassphrase);
    await a.page.getByLabel('Confirm backup passphrase').fill(backupPassphrase);
    await a.page.getByRole('button', { name: 'Set up backup' }).click();
    const shown = a.page.getByTestId('recovery-key');
    await shown.waitFor();
    const recoveryKey = (await shown.textContent()) ?? '';
    expect(recoveryKey).toMatch(/^Es[STU]\S( \S{4}){11}$/);
    expect(await shown.locator('span').count()).toBe(12);
    const version = /On, version (\S+)/.exec((await a.page.getByTestId('backup-state').textContent()) ?? '')?.[1];
    expect(version).toBeDefined();

    // Copy puts exactly the key on the clipboard; Download saves it as a .txt file, byte for byte.
    const next = a.page.getByRole('button', { name: 'Continue' });
    expect(await next.isDisabled()).toBe(true);
    await a.page.getByRole('button', { name: 'Copy' }).click();
    await statusWith(a.page, 'Recovery key copied to the clipboard.', section(a.page, 'Key backup'));
    expect(await a.page.evaluate(() => navigator.clipboard.readText())).toBe(recoveryKey);
    const saved = await downloadOf(a.page, 'Download');
    expect(saved.file.suggestedFilename()).toBe('latchkey-recovery-key.txt');
    expect(saved.bytes.equals(Buffer.from(`${recoveryKey}\n`, 'utf8'))).toBe(true);
    await a.page.screenshot({ path: KEY_SCREENSHOT, fullPage: true });

    // Continue only once the box is ticked; then the key is gone from the page.
    await a.page.getByLabel('I have saved my recovery key').check();
    expect(await next.isDisabled()).toBe(false);
    await next.click();
    expect(await a.page.content()).not.toContain(recoveryKey);

    // The keys go up by themselves, with the progress bar: no button to press.
    await factIs(a.page, 'backup-count', String(KEY_COUNT));
    await factIs(a.page, 'backup-pending', '0');
    await a.page
      .getByTestId('upload-status')
      .filter({ hasText: `Last upload: ${KEY_COUNT} keys` })
      .waitFor();
    const uploadText = (await a.page.getByTestId('upload-progress-text').textContent()) ?? '';
    expect(uploadText).toMatch(new RegExp(`^${KEY_COUNT} of ${KEY_COUNT} keys uploaded · [\\d,]+ keys/s$`));
    expect(
      await a.page.locator('#upload-progress').evaluate((bar: HTMLProgressElement) => [bar.value, bar.max]),
    ).toEqual([KEY_COUNT, KEY_COUNT]);
    expect(await a.page.getByRole('button', { name: /^Upload/ }).count()).toBe(0);

    // This device made the backup and holds every key in it: restoring is folded away, and says why.
    const restoreA = section(a.page, 'Restore keys from the backup');
    await restoreA
      .getByTestId('restore-explanation')
      .filter({ hasText: 'Nothing to restore: this device already holds every key in the backup.' })
      .waitFor();
    expect(await restoreA.getByRole('button', { name: 'Restore with recovery key' }).isHidden()).toBe(true);
    expect(await restoreA.getByRole('button', { name: 'Show the ways to restore' }).isVisible()).toBe(true);
    await a.page.screenshot({ path: SCREENSHOT, fullPage: true });

    // Device B: a fresh context with an empty IndexedDB. The backup is there; this device holds nothing.
    const b = await openDevice();
    await openBackup(b.page, email, password);
    await factIs(b.page, 'backup-state', `On, version ${version}`);
    await factIs(b.page, 'backup-count', String(KEY_COUNT));
    await factIs(b.page, 'device-count', '0');
    // B lacks every key in the backup: the ways to restore are open, and the panel says what is missing.
    const restoreB = section(b.page, 'Restore keys from the backup');
    await restoreB
      .getByTestId('restore-explanation')
      .filter({ hasText: `The backup holds ${KEY_COUNT} keys this device does not have.` })
      .waitFor();
    expect(await restoreB.getByRole('button', { name: 'Show the ways to restore' }).isHidden()).toBe(true);

    // A well-formed key of another backup, and one with a typo: refused with LK_BAD_RECOVERY_KEY, nothing imported.
    const recoveryField = b.page.getByLabel('Recovery key', { exact: true });
    const restoreButton = b.page.getByRole('button', { name: 'Restore with recovery key' });
    await recoveryField.fill(FOREIGN_RECOVERY_KEY);
    await restoreButton.click();
    expect(await alertWith(b.page, 'LK_BAD_RECOVERY_KEY', restoreB)).toContain(
      'That recovery key is well formed, but it is not the one for this backup.',
    );
    await recoveryField.fill(`${recoveryKey.slice(0, -1)}${recoveryKey.endsWith('x') ? 'y' : 'x'}`);
    await restoreButton.click();
    await alertWith(b.page, 'LK_BAD_RECOVERY_KEY', restoreB);
    expect(await b.page.getByTestId('restore-result').isHidden()).toBe(true);
    await factIs(b.page, 'device-count', '0');
    expect(await storedRecords(b.page, accountId)).toBe(0);

    // The right key restores every key, with the progress bar and the result.
    await recoveryField.fill(recoveryKey);
    await restoreButton.click();
    await b.page
      .getByTestId('restore-result')
      .filter({
        hasText: `Imported ${KEY_COUNT} of the ${KEY_COUNT} keys in backup version ${version}; none failed.`,
      })
      .waitFor();
    expect((await b.page.getByTestId('restore-progress-text').textContent()) ?? '').toMatch(
      new RegExp(`^${KEY_COUNT} of ${KEY_COUNT} keys restored · [\\d,]+ keys/s$`),
    );
    // The bar and the result show by the form that was used, in view, not at the panel's far end.
    expect(await inView(b.page, b.page.getByTestId('restore-result'))).toBe(true);
    expect(await inView(b.page, b.page.locator('#restore-progress'))).toBe(true);
    await factIs(b.page, 'device-count', String(KEY_COUNT));
    await factIs(b.page, 'backup-pending', '0');
    expect(await storedRecords(b.page, accountId)).toBe(KEY_COUNT);
    expect(await recoveryField.inputValue()).toBe('');
    // Now B holds them all: the ways to restore fold away, the result stays in view.
    await restoreB.getByTestId('restore-explanation').filter({ hasText: 'Nothing to restore' }).waitFor();
    expect(await restoreButton.isHidden()).toBe(true);
    expect(await b.page.getByTestId('restore-result').isVisible()).toBe(true);
    await b.page.screenshot({ path: RESTORE_SCREENSHOT, fullPage: true });

    // What B holds, taken out as an export file and read in Node: the very keys A started with.
    await b.page.getByLabel('Passphrase for the export file').fill(filePassphrase);
    await b.page.getByLabel('Confirm export passphrase').fill(filePassphrase);
    const exported = await downloadOf(b.page, 'Export keys');
    expect(exported.file.suggestedFilename()).toBe('latchkey-keys.txt');
    const check = await node.openKeystore(join(dir, 'from-device-b.db'));
    expect(await importRoomKeys(check, exported.bytes.toString('utf8'), filePassphrase)).toEqual({
      total: KEY_COUNT,
      imported: KEY_COUNT,
    });
    expectSameKeys(await keysIn(check), keys);
    await check.close();

    // What the server holds, restored in Node with the same recovery key: the same keys again.
    const fromServer = await node.openKeystore(join(dir, 'from-server.db'));
    const restored = await node.keyBackup(fromServer).restore({ recoveryKey });
    expect(restored).toEqual({ version, total: KEY_COUNT, imported: KEY_COUNT, failed: 0, refused: 0, refusals: {} });
    expectSameKeys(await keysIn(fromServer), keys);

    // A deletes the backup, after a confirmation that can be cancelled and the password (issue 8: the
    // server deletes only after a fresh password check, and A's is long past); a wrong one deletes nothing.
    skew = FRESH_AUTH_MS + 1;
    await a.page.getByRole('button', { name: 'Delete backup…' }).click();
    const confirm = a.page.getByRole('group', { name: 'Confirm deleting the backup' });
    await confirm.waitFor();
    await a.page.getByRole('button', { name: 'Cancel' }).click();
    await factIs(a.page, 'backup-count', String(KEY_COUNT));
    await a.page.getByRole('button', { name: 'Delete backup…' }).click();
    await a.page.getByLabel('Your password, to confirm').fill('not the password');
    await a.page.getByRole('button', { name: 'Yes, delete the backup' }).click();
    await alertWith(a.page, 'LK_LOGIN_FAILED', confirm);
    expect((await node.keyBackup(fromServer).current())?.version).toBe(version);
    await a.page.getByLabel('Your password, to confirm').fill(password);
    await a.page.getByRole('button', { name: 'Yes, delete the backup' }).click();
    await statusWith(a.page, `Backup version ${version} is deleted.`, section(a.page, 'Key backup'));
    await factIs(a.page, 'backup-state', 'Off: nothing is backed up yet');
    await factIs(a.page, 'device-count', String(KEY_COUNT));
    expect(await node.keyBackup(fromServer).current()).toBeUndefined();
    await fromServer.close();
    skew = 0;

    // B, still on its screen, finds out by itself at its next background upload: no backup, nothing to restore.
    await factIs(b.page, 'backup-state', 'Off: nothing is backed up yet');
    await restoreB.waitFor({ state: 'hidden' });

    // A sets a backup up again, its password check long past. The deleted backup's keys are still in
    // secret storage, and writing over them needs a fresh password check (issue 8): the form asks for
    // the password, a wrong one changes nothing, the right one sets the backup up.
    skew = FRESH_AUTH_MS + 1;
    const probe = await node.openKeystore(join(dir, 'probe.db'));
    expect(await node.keyBackup(probe).enableReplaces()).toBe(true);
    const setupPassword = a.page.getByLabel('Your password, to confirm');
    await setupPassword.fill('not the password');
    await a.page.getByRole('button', { name: 'Set up backup' }).click();
    await alertWith(a.page, 'LK_LOGIN_FAILED', section(a.page, 'Key backup'));
    expect(await node.keyBackup(probe).current()).toBeUndefined();
    await setupPassword.fill(password);
    await a.page.getByRole('button', { name: 'Set up backup' }).click();
    const newKey = (await a.page.getByTestId('recovery-key').textContent()) ?? '';
    expect(newKey).not.toBe(recoveryKey);
    const restoredAgain = await node.keyBackup(probe).restore({ recoveryKey: newKey });
    expect(restoredAgain.failed).toBe(0);
    await probe.close();
    skew = 0;

    expect([...a.errors, ...b.errors]).toEqual([]);
    await a.context.close();
    await b.context.close();
    await node.logOut();
  }, 240_000);

  it('restores with the passphrase (refusing a wrong one) or the login alone, and after a password reset', async () => {
    const email = 'web-restore-ways@example.com';
    const password = 'restore ways password';
    const backupPassphrase = 'the passphrase of this backup';
    const { accountId } = await createVerifiedAccount(web.server, email, password);

    // Device A is the SDK in Node: a backup with a passphrase that logged-in devices may open too.
    const keys = sorted(makeRoomKeys(KEY_COUNT, 6));
    const node = await web.server.client().logIn(email, password, { deviceName: 'device A' });
    const a = await node.openKeystore(join(dir, 'restore-ways-a.db'));
    await a.addRoomKeys(keys.map((key) => ({ key })));
    const backup = node.keyBackup(a);
    const { version } = await backup.enable({ passphrase: backupPassphrase, trustLoggedInDevices: true });
    expect(await backup.uploadPending()).toEqual({ uploaded: KEY_COUNT, version });
    await a.close();
    await node.logOut();

    const restoredAll = `Imported ${KEY_COUNT} of the ${KEY_COUNT} keys in backup version ${version}; none failed.`;

    // Device C: a wrong passphrase is LK_BAD_PASSPHRASE and stores nothing; the right one restores all.
    const c = await openDevice();
    await openBackup(c.page, email, password);
    await factIs(c.page, 'backup-count', String(KEY_COUNT));
    const phraseField = c.page.getByLabel('Backup passphrase', { exact: true });
    const phraseButton = c.page.getByRole('button', { name: 'Restore with passphrase' });
    await phraseField.fill('not the passphrase');
    await phraseButton.click();
    await alertWith(c.page, 'LK_BAD_PASSPHRASE', section(c.page, 'Restore keys from the backup'));
    expect(await c.page.getByTestId('restore-result').isHidden()).toBe(true);
    expect(await storedRecords(c.page, accountId)).toBe(0);
    await phraseField.fill(backupPassphrase);
    await phraseButton.click();
    await c.page.getByTestId('restore-result').filter({ hasText: restoredAll }).waitFor();
    await factIs(c.page, 'device-count', String(KEY_COUNT));
    expect(await storedRecords(c.page, accountId)).toBe(KEY_COUNT);
    expect(await phraseField.inputValue()).toBe('');

    // Device D: nothing but the password it logged in with.
    const d = await openDevice();
    await openBackup(d.page, email, password);
    await d.page.getByRole('button', { name: 'Restore using this login' }).click();
    await d.page.getByTestId('restore-result').filter({ hasText: restoredAll }).waitFor();
    await factIs(d.page, 'device-count', String(KEY_COUNT));
    expect(await storedRecords(d.page, accountId)).toBe(KEY_COUNT);

    // What D holds, exported and read in Node: A's keys, byte for byte.
    await d.page.getByLabel('Passphrase for the export file').fill('check passphrase');
    await d.page.getByLabel('Confirm export passphrase').fill('check passphrase');
    const exported = await downloadOf(d.page, 'Export keys');
    const reader = await web.server.client().logIn(email, password, { deviceName: 'checker' });
    const check = await reader.openKeystore(join(dir, 'restore-ways-check.db'));
    expect(await importRoomKeys(check, exported.bytes.toString('utf8'), 'check passphrase')).toEqual({
      total: KEY_COUNT,
      imported: KEY_COUNT,
    });
    expectSameKeys(await keysIn(check), keys);
    await check.close();
    await reader.logOut();

    // The password is reset elsewhere: kB is new, and C's keystore was sealed under the old one.
    const sent = web.server.smtp.messages.length;
    const resetter = web.server.client();
    await resetter.requestReset(email);
    const newPassword = 'the password after the reset';
    await resetter.completeReset(email, await web.server.smtp.codeFor(email, { after: sent }), newPassword);
    await c.page.goto(`${web.server.url}/#/login`);
    await openBackup(c.page, email, newPassword);
    // The screen says what happened and offers to clear the old keys; nothing is cleared unasked.
    await alertWith(c.page, 'LK_KEYSTORE_KEY_CHANGED');
    await c.page.getByTestId('stale-keystore').waitFor();
    expect(await storedRecords(c.page, accountId)).toBe(KEY_COUNT);
    await c.page.getByRole('button', { name: 'Clear this browser’s old keys' }).click();
    await statusWith(c.page, 'This browser’s old keys are cleared.');
    await factIs(c.page, 'device-count', '0');
    expect(await storedRecords(c.page, accountId)).toBe(0);
    // The backup survived the reset: the passphrase brings every key back into the new keystore.
    await c.page.getByLabel('Backup passphrase', { exact: true }).fill(backupPassphrase);
    await c.page.getByRole('button', { name: 'Restore with passphrase' }).click();
    await c.page.getByTestId('restore-result').filter({ hasText: restoredAll }).waitFor();
    await factIs(c.page, 'device-count', String(KEY_COUNT));
    expect(await storedRecords(c.page, accountId)).toBe(KEY_COUNT);

    expect([...c.errors, ...d.errors]).toEqual([]);
    await c.context.close();
    await d.context.close();
  }, 240_000);

  it('uploads imported keys in the background, shows it live, and warns before leaving keys not uploaded', async () => {
    const email = 'web-background@example.com';
    const password = 'background upload password';
    const filePassphrase = 'background file passphrase';
    await createVerifiedAccount(web.server, email, password);
    const many = 1_200;
    const few = 30;
    const n = (value: number) => value.toLocaleString('en-US');

    // Two export files, as a new user brings them from another client.
    const node = await web.server.client().logIn(email, password, { deviceName: 'key source' });
    const source = await node.openKeystore(join(dir, 'background-source.db'));
    const first = makeRoomKeys(many, 40);
    const second = makeRoomKeys(few, 10).map((key) => ({ ...key, room_id: `${key.room_id}-later` }));
    await source.addRoomKeys(first.map((key) => ({ key })));
    const firstFile = await exportRoomKeys(source, filePassphrase, 1000);
    const later = await node.openKeystore(join(dir, 'background-later.db'));
    await later.addRoomKeys(second.map((key) => ({ key })));
    const secondFile = await exportRoomKeys(later, filePassphrase, 1000);
    await later.close();
    const onServer = async () => (await node.keyBackup(source).current())?.count;

    // A backup is set up with nothing in it yet.
    const a = await openDevice();
    await openBackup(a.page, email, password);
    await a.page.getByRole('button', { name: 'Set up backup' }).click();
    await a.page.getByLabel('I have saved my recovery key').check();
    await a.page.getByRole('button', { name: 'Continue' }).click();
    await factIs(a.page, 'backup-count', '0');
    await a.page.getByTestId('upload-status').filter({ hasText: 'Up to date' }).waitFor();

    // Import, and press nothing else: the keys reach the server by themselves, and the page says so.
    const keysPanel = section(a.page, 'Keys on this device');
    await a.page.getByLabel('Key export file').setInputFiles({
      name: 'many.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from(firstFile.text),
    });
    await a.page.getByLabel('File passphrase').fill(filePassphrase);
    await a.page.getByRole('button', { name: 'Import keys' }).click();
    await statusWith(a.page, `Imported ${n(many)} of the ${n(many)} keys in many.txt.`, keysPanel);
    await factIs(a.page, 'backup-count', n(many));
    await factIs(a.page, 'backup-pending', '0');
    await a.page
      .getByTestId('upload-status')
      .filter({ hasText: `Last upload: ${n(many)} keys` })
      .waitFor();
    expect(await onServer()).toBe(many);
    const seen = (await statusLog(a.page)).map(({ text }) => text);
    expect(seen.some((text) => text.includes('They are going up to your backup now.'))).toBe(true);

    // Offline, a second import cannot go up: the page says why and how many wait, and keeps trying.
    await a.context.setOffline(true);
    await a.page.getByLabel('Key export file').setInputFiles({
      name: 'few.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from(secondFile.text),
    });
    await a.page.getByRole('button', { name: 'Import keys' }).click();
    await statusWith(a.page, `Imported ${few} of the ${few} keys in few.txt.`, keysPanel);
    await factIs(a.page, 'backup-pending', String(few));
    const failure = a.page.getByTestId('upload-status').locator('[data-code="LK_NETWORK"]');
    await failure.waitFor();
    expect(await failure.locator('.message').textContent()).toBe(
      'The server could not be reached. Check your connection and try again.',
    );
    await a.page.getByTestId('upload-status').getByRole('button', { name: 'Try again now' }).waitFor();
    await a.page.screenshot({ path: BACKGROUND_SCREENSHOT, fullPage: true });
    expect(await onServer()).toBe(many);

    // Closing the tab now makes the browser ask first; staying keeps the page.
    const asked = a.page.waitForEvent('dialog');
    await a.page.close({ runBeforeUnload: true });
    const dialog = await asked;
    expect(dialog.type()).toBe('beforeunload');
    await dialog.dismiss();
    expect(a.page.isClosed()).toBe(false);

    // Logging out asks too, saying how many keys wait and what becomes of them; "Stay" changes nothing.
    await a.page.getByRole('link', { name: 'Back to your account' }).click();
    // Offline, the account page says so where each list would be, not "Loading…" for ever.
    const sessionsPanel = section(a.page, 'Sessions');
    await sessionsPanel.getByText('The sessions could not be loaded.').waitFor();
    await alertWith(a.page, 'LK_NETWORK', sessionsPanel);
    await a.page.getByRole('button', { name: 'Log out' }).click();
    const warning = a.page.getByTestId('logout-warning');
    await warning.filter({ hasText: `${few} keys on this device are not in your backup yet.` }).waitFor();
    expect(await warning.textContent()).toContain('They could not be uploaded: The server could not be reached.');
    await a.page.screenshot({ path: LOGOUT_SCREENSHOT, fullPage: true });
    await a.page.getByRole('button', { name: 'Stay logged in' }).click();
    await warning.waitFor({ state: 'detached' });
    expect(await a.page.locator('#screen').getAttribute('data-route')).toBe('account');

    // Back online, the upload catches up by itself while the warning is open, and the warning says so.
    await a.page.getByRole('button', { name: 'Log out' }).click();
    await warning.waitFor();
    await a.context.setOffline(false);
    await warning.filter({ hasText: 'Every key on this device is in your backup now.' }).waitFor();
    expect(await onServer()).toBe(many + few);
    await warning.getByRole('button', { name: 'Log out', exact: true }).click();
    await statusWith(a.page, 'Logged out');

    expect(a.errors).toEqual([]);
    await a.context.close();
    await source.close();
    await node.logOut();
  }, 240_000);
});
