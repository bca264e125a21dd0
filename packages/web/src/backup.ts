import {
  type BackupProgress,
  exportRoomKeys,
  importRoomKeys,
  type KeyBackup,
  LatchkeyError,
  type LocalKeystore,
  type RecoverySecret,
  type Session,
} from '@latchkey/client';
import { type Guard, guardSession } from './account.js';
import type { App } from './app.js';
import { checkbox, count, download, field, form, h, link, panel, runAction, showError, showStatus } from './ui.js';

/** The file names the browser suggests; the user may rename them. */
export const RECOVERY_KEY_FILE = 'latchkey-recovery-key.txt';
export const KEY_EXPORT_FILE = 'latchkey-keys.txt';

/** PBKDF2 with 500,000 rounds runs in this tab, so the passphrase steps say that they take a while. */
const STRETCHING = '(the passphrase is stretched on purpose; this takes a few seconds)';

type Status = Awaited<ReturnType<KeyBackup['status']>>;
type Enabled = Extract<Status, { enabled: true }>;

/**
 * What the backup panel shows. The recovery key exists only in the `new-key` state, the one time it is
 * shown; leaving that state drops it. Deleting needs the `confirm-delete` state first.
 */
type View =
  | { kind: 'off'; onDevice: number }
  | { kind: 'on'; status: Enabled; onDevice: number }
  | { kind: 'new-key'; version: string; recoveryKey: string }
  | { kind: 'confirm-delete'; status: Enabled; onDevice: number };

interface Device {
  keystore: LocalKeystore;
  backup: KeyBackup;
}

/**
 * Key backup for this browser's keystore: set up (recovery key shown once), upload with progress,
 * restore on a new device with the recovery key, a passphrase or the password login, delete; and the
 * Matrix key export files, to bring keys in from another client or take them out.
 */
export function backupScreen(app: App, session: Session): HTMLElement {
  if (!session.hasKeys) {
    return h(
      'div',
      { class: 'stack' },
      panel(
        'Key backup',
        h(
          'p',
          {},
          'This tab was reloaded, so your keys are no longer in memory, and this device’s keystore opens only ' +
            'with them. ',
          link('account', 'Unlock them on your account page'),
          ', then come back.',
        ),
      ),
    );
  }
  const guarded = guardSession(app);
  const device: Promise<Device> = app
    .keystore()
    .then((keystore) => ({ keystore, backup: session.keyBackup(keystore) }));

  const facts = h('dl', { class: 'facts' });
  const actions = h('div', { class: 'backup-actions' }, h('p', {}, 'Loading the backup’s status…'));
  const upload = progressMeter('upload-progress', 'Upload progress', 'uploaded');
  const backupPanel = panel(
    'Key backup',
    h(
      'p',
      { class: 'aside' },
      'Your room keys are encrypted in this browser to a backup key before they are uploaded. The server ' +
        'holds them but cannot read them; your recovery key opens them on any device.',
    ),
    facts,
    actions,
    upload.element,
  );
  const restore = restorePanel(guarded, device, () => refresh());
  const keys = deviceKeysPanel(guarded, device, () => refresh());

  const render = (view: View) => {
    // Restoring is for a backup that exists, and waits while the new recovery key is on screen.
    restore.hidden = view.kind === 'off' || view.kind === 'new-key';
    if (view.kind === 'new-key') {
      facts.replaceChildren(
        h('dt', {}, 'Backup'),
        h('dd', { 'data-testid': 'backup-state' }, `On, version ${view.version}`),
      );
      actions.replaceChildren(
        newKeyView(view, () => void guarded(() => refresh({ focus: 'upload' }))().catch(showError)),
      );
      return;
    }
    facts.replaceChildren(...statusFacts(view));
    if (view.kind === 'off') actions.replaceChildren(setupForm(guarded, device, render));
    else if (view.kind === 'on') actions.replaceChildren(...onActions(view, guarded, device, upload, render, refresh));
    else actions.replaceChildren(confirmDelete(view, guarded, device, render, refresh));
  };

  async function refresh(options: { focus?: 'upload' } = {}): Promise<void> {
    const { keystore, backup } = await device;
    const [status, held] = await Promise.all([backup.status(), keystore.count()]);
    render(
      status.enabled ? { kind: 'on', status, onDevice: held.persisted } : { kind: 'off', onDevice: held.persisted },
    );
    if (options.focus === 'upload') actions.querySelector<HTMLButtonElement>('button[data-action="upload"]')?.focus();
  }

  void guarded(() => refresh())().catch(showError);
  const back = h('p', {}, link('account', 'Back to your account'));
  const screen = h('div', { class: 'stack' }, backupPanel, restore, keys, back);
  device.catch((error: unknown) => {
    if (error instanceof LatchkeyError && error.code === 'LK_KEYSTORE_KEY_CHANGED')
      screen.replaceChildren(staleKeystorePanel(app), back);
  });
  return screen;
}

/**
 * The keystore was sealed under the kB before a password reset: nothing can read it now. Say so, and
 * offer to clear it, after which the backup screen (and a restore with the recovery key) works again.
 */
function staleKeystorePanel(app: App): HTMLElement {
  const clear = h('button', { type: 'button', class: 'danger' }, 'Clear this browser’s old keys');
  const section = panel(
    'Key backup',
    h(
      'p',
      { 'data-testid': 'stale-keystore' },
      'Your password was reset since this browser last stored keys, and the keys it holds were sealed under ' +
        'your old account keys: nothing can read them now. Clear them, then restore from your backup with ' +
        'your recovery key.',
    ),
    h('div', { class: 'button-row' }, clear),
  );
  clear.addEventListener('click', () => {
    void runAction(section, 'Clearing this browser’s old keys…', async () => {
      await app.eraseKeystore();
      app.go('backup', 'This browser’s old keys are cleared. Restore your keys from the backup below.');
    });
  });
  return section;
}

function statusFacts(view: Exclude<View, { kind: 'new-key' }>): HTMLElement[] {
  const rows: Array<[string, string, string]> =
    view.kind === 'off'
      ? [['Backup', 'Off: nothing is backed up yet', 'backup-state']]
      : [
          ['Backup', `On, version ${view.status.version}`, 'backup-state'],
          ['Keys on the server', count(view.status.count), 'backup-count'],
          ['Waiting to upload from this device', count(view.status.pending), 'backup-pending'],
          [
            'Signed by this account',
            view.status.trusted ? 'yes' : 'no: this device will not upload to it (delete it and set up a new one)',
            'backup-trusted',
          ],
        ];
  rows.push(['Keys on this device', count(view.onDevice), 'device-count']);
  return rows.flatMap(([term, value, testId]) => [h('dt', {}, term), h('dd', { 'data-testid': testId }, value)]);
}

/** Backup is off: an optional passphrase, whether password logins may restore, and the button. */
function setupForm(guarded: Guard, device: Promise<Device>, render: (view: View) => void): HTMLElement {
  const passphrase = field('New backup passphrase (optional)', {
    name: 'backup-passphrase',
    type: 'password',
    autocomplete: 'new-password',
    hint: 'Lets you restore with a passphrase as well as with the recovery key. Leave empty for the key only.',
  });
  const confirm = field('Confirm backup passphrase', {
    name: 'backup-passphrase-confirm',
    type: 'password',
    autocomplete: 'new-password',
  });
  passphrase.input.required = false;
  confirm.input.required = false;
  const trust = checkbox('Let devices that log in with my password restore the backup', 'backup-trust', true);
  const element = h(
    'div',
    {},
    h('h3', {}, 'Set up backup'),
    form('Set up backup', 'Setting up backup…', [passphrase.row, confirm.row, trust.row], async () => {
      const phrase = passphrase.input.value;
      if (phrase !== confirm.input.value) throw new Error('The two passphrases do not match.');
      if (phrase !== '') showStatus(`Deriving the backup key from your passphrase… ${STRETCHING}`);
      await guarded(async () => {
        const { backup } = await device;
        const options = { trustLoggedInDevices: trust.input.checked, ...(phrase === '' ? {} : { passphrase: phrase }) };
        const { version, recoveryKey } = await backup.enable(options);
        render({ kind: 'new-key', version, recoveryKey });
        showStatus(`Backup version ${version} is set up. Save your recovery key now.`);
      })();
    }),
  );
  return element;
}

/**
 * The recovery key, shown once: in groups of four for reading aloud or copying by hand, with Copy and
 * Download, and a tick box that must be ticked before the key is dropped from the page.
 */
function newKeyView(view: Extract<View, { kind: 'new-key' }>, onContinue: () => void): HTMLElement {
  const groups = view.recoveryKey.split(' ');
  // Spaces between the groups keep the text (for copy, and for the test) exactly the key.
  const keyText = h(
    'p',
    { class: 'recovery-key', 'data-testid': 'recovery-key', tabindex: '-1', 'aria-label': 'Recovery key' },
    ...groups.flatMap((group, i) => (i === 0 ? [h('span', {}, group)] : [' ', h('span', {}, group)])),
  );
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  const save = h('button', { type: 'button', class: 'secondary' }, 'Download');
  const buttons = h('div', { class: 'button-row' }, copy, save);
  copy.addEventListener('click', () => {
    void runAction(buttons, 'Copying…', async () => {
      await navigator.clipboard.writeText(view.recoveryKey);
      showStatus('Recovery key copied to the clipboard.');
    });
  });
  save.addEventListener('click', () => {
    download(RECOVERY_KEY_FILE, `${view.recoveryKey}\n`);
    showStatus(`Recovery key saved as ${RECOVERY_KEY_FILE}.`);
  });
  const saved = checkbox('I have saved my recovery key', 'recovery-key-saved');
  const next = h('button', { type: 'button', disabled: true }, 'Continue');
  saved.input.addEventListener('change', () => {
    next.disabled = !saved.input.checked;
  });
  const element = h(
    'div',
    { class: 'new-key' },
    h('h3', {}, 'Your recovery key'),
    h(
      'p',
      {},
      h('strong', {}, 'This is the only time it is shown. '),
      'With it, any device can read your backed-up keys; without it (or your passphrase) they are lost if ' +
        'you lose every device. Keep it somewhere safe, apart from your password.',
    ),
    keyText,
    buttons,
    saved.row,
    next,
  );
  next.addEventListener('click', () => {
    keyText.replaceChildren();
    onContinue();
  });
  queueMicrotask(() => keyText.focus());
  return element;
}

/** Backup is on: upload what is pending (with the progress bar), or start deleting. */
function onActions(
  view: Extract<View, { kind: 'on' }>,
  guarded: Guard,
  device: Promise<Device>,
  meter: Meter,
  render: (view: View) => void,
  refresh: () => Promise<void>,
): HTMLElement[] {
  const pending = view.status.pending;
  const upload = h(
    'button',
    { type: 'button', 'data-action': 'upload', 'aria-describedby': meter.textId, disabled: pending === 0 },
    pending === 0 ? 'Nothing to upload' : `Upload ${count(pending)} ${pending === 1 ? 'key' : 'keys'}`,
  );
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete backup…');
  const row = h('div', { class: 'button-row' }, upload, remove);
  upload.addEventListener('click', () => {
    void runAction(
      row,
      'Uploading keys…',
      guarded(async () => {
        const { backup } = await device;
        meter.start(pending);
        let outcome: Awaited<ReturnType<KeyBackup['uploadPending']>>;
        try {
          outcome = await backup.uploadPending((progress) => meter.update(progress));
        } catch (error) {
          // Batches the server acknowledged stay uploaded: show what is still pending, then the error.
          await refresh().catch(() => undefined);
          throw error;
        }
        const { uploaded, version } = outcome;
        // Another tab may have uploaded them meanwhile: then no progress came and the bar means nothing.
        if (uploaded === 0) meter.reset();
        await refresh();
        showStatus(`Uploaded ${count(uploaded)} ${uploaded === 1 ? 'key' : 'keys'} to backup version ${version}.`);
      }),
    );
  });
  remove.addEventListener('click', () => render({ ...view, kind: 'confirm-delete' }));
  return [row];
}

function confirmDelete(
  view: Extract<View, { kind: 'confirm-delete' }>,
  guarded: Guard,
  device: Promise<Device>,
  render: (view: View) => void,
  refresh: () => Promise<void>,
): HTMLElement {
  const yes = h('button', { type: 'button', class: 'danger' }, 'Yes, delete the backup');
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const keysOnServer = view.status.count === 1 ? '1 key' : `${count(view.status.count)} keys`;
  const element = h(
    'div',
    { class: 'confirm', role: 'group', 'aria-label': 'Confirm deleting the backup' },
    h(
      'p',
      {},
      `Delete backup version ${view.status.version} and the ${keysOnServer} in it from the server? ` +
        'A device without its own copy can no longer get them back. The keys on this device stay.',
    ),
    h('div', { class: 'button-row' }, yes, cancel),
  );
  yes.addEventListener('click', () => {
    void runAction(
      element,
      'Deleting the backup…',
      guarded(async () => {
        await (await device).backup.delete();
        await refresh();
        showStatus(`Backup version ${view.status.version} is deleted.`);
      }),
    );
  });
  cancel.addEventListener('click', () => render({ ...view, kind: 'on' }));
  queueMicrotask(() => cancel.focus());
  return element;
}

/** Restore on a new device: the recovery key, else the passphrase, else the password login. */
function restorePanel(guarded: Guard, device: Promise<Device>, refresh: () => Promise<void>): HTMLElement {
  const meter = progressMeter('restore-progress', 'Restore progress', 'restored');
  const result = h('p', { class: 'result', 'data-testid': 'restore-result', hidden: true });
  const run = (secret: () => RecoverySecret) => async () =>
    guarded(async () => {
      result.hidden = true;
      meter.reset();
      const { backup } = await device;
      const outcome = await backup.restore(secret(), (progress) => meter.update(progress));
      // The key and passphrase open the backup from anywhere: leave neither in the page once used.
      recoveryKey.input.value = '';
      passphrase.input.value = '';
      const failed = outcome.failed === 0 ? 'none failed' : `${count(outcome.failed)} failed to decrypt`;
      const text =
        `Imported ${count(outcome.imported)} of the ${count(outcome.total)} keys in backup version ` +
        `${outcome.version}; ${failed}.`;
      result.textContent =
        outcome.imported < outcome.total - outcome.failed ? `${text} The others were already on this device.` : text;
      result.hidden = false;
      await refresh();
      showStatus(text);
    })();
  const recoveryKey = field('Recovery key', {
    name: 'recovery-key',
    autocomplete: 'off',
    hint: '48 characters in groups of four, starting with Es. Spaces do not matter.',
  });
  recoveryKey.input.spellcheck = false;
  recoveryKey.input.classList.add('mono');
  const passphrase = field('Backup passphrase', {
    name: 'restore-passphrase',
    type: 'password',
    autocomplete: 'off',
  });
  const byKey = form(
    'Restore with recovery key',
    'Restoring keys…',
    [recoveryKey.row],
    run(() => ({ recoveryKey: recoveryKey.input.value })),
  );
  byKey.classList.add('wide');
  const trusted = h('button', { type: 'button', class: 'secondary' }, 'Restore using this login');
  const byLogin = h(
    'div',
    {},
    h('h3', {}, 'Or through your password login'),
    h('p', { class: 'aside' }, 'Works if the backup was set up to let devices that log in with your password restore.'),
    trusted,
  );
  const element = panel(
    'Restore keys from the backup',
    h(
      'p',
      { class: 'aside' },
      'On a new device, bring back your keys. Nothing is imported unless the key opens the backup.',
    ),
    byKey,
    h('h3', {}, 'Or with your backup passphrase'),
    form(
      'Restore with passphrase',
      `Deriving the key from your passphrase… ${STRETCHING}`,
      [passphrase.row],
      run(() => ({ passphrase: passphrase.input.value })),
    ),
    byLogin,
    meter.element,
    result,
  );
  trusted.addEventListener('click', () => {
    void runAction(
      element,
      'Restoring keys…',
      run(() => ({ trustedDevice: true })),
    );
  });
  element.hidden = true;
  return element;
}

/** The keys this browser holds: import a Matrix key export file, or export them to one. */
function deviceKeysPanel(guarded: Guard, device: Promise<Device>, refresh: () => Promise<void>): HTMLElement {
  const file = field('Key export file', { name: 'import-file', type: 'file' });
  file.input.accept = '.txt,text/plain';
  const importPassphrase = field('File passphrase', {
    name: 'import-passphrase',
    type: 'password',
    autocomplete: 'off',
  });
  const exportPassphrase = field('Passphrase for the export file', {
    name: 'export-passphrase',
    type: 'password',
    autocomplete: 'new-password',
    hint: 'Whoever has the file and this passphrase can read your keys.',
  });
  const exportConfirm = field('Confirm export passphrase', {
    name: 'export-passphrase-confirm',
    type: 'password',
    autocomplete: 'new-password',
  });
  return panel(
    'Keys on this device',
    h(
      'p',
      { class: 'aside' },
      'Key export files (“MEGOLM SESSION DATA”) move keys between Matrix clients such as Element and this one. ' +
        'Imported keys join the next backup upload.',
    ),
    h('h3', {}, 'Import keys from a key export file'),
    form(
      'Import keys',
      `Decrypting the file… ${STRETCHING}`,
      [file.row, importPassphrase.row],
      guarded(async () => {
        const chosen = file.input.files?.[0];
        if (chosen === undefined) throw new Error('Choose a key export file first.');
        const { keystore } = await device;
        const { total, imported } = await importRoomKeys(keystore, await chosen.text(), importPassphrase.input.value);
        await refresh();
        const already = total - imported;
        showStatus(
          `Imported ${count(imported)} of the ${count(total)} keys in ${chosen.name}` +
            (already === 0 ? '.' : `; this device already had ${count(already)} of them.`),
        );
      }),
    ),
    h('h3', {}, 'Export the keys on this device'),
    form(
      'Export keys',
      `Encrypting the file… ${STRETCHING}`,
      [exportPassphrase.row, exportConfirm.row],
      guarded(async () => {
        const phrase = exportPassphrase.input.value;
        if (phrase === '') throw new Error('Choose a passphrase for the export file.');
        if (phrase !== exportConfirm.input.value) throw new Error('The two passphrases do not match.');
        const { keystore } = await device;
        const exported = await exportRoomKeys(keystore, phrase);
        download(KEY_EXPORT_FILE, exported.text);
        showStatus(`Exported ${count(exported.count)} ${exported.count === 1 ? 'key' : 'keys'} to ${KEY_EXPORT_FILE}.`);
      }),
    ),
  );
}

interface Meter {
  element: HTMLElement;
  /** The id of the text line, for `aria-describedby` on the button that starts the work. */
  textId: string;
  start(total: number): void;
  update(progress: BackupProgress): void;
  reset(): void;
}

/**
 * A progress bar with a text line (keys done of total, keys per second, time left). The text line is
 * a polite live region, so a screen reader hears the count without losing its place.
 */
function progressMeter(id: string, label: string, verb: string): Meter {
  const bar = h('progress', { id, max: '1', value: '0' });
  const textId = `${id}-text`;
  const text = h('p', { id: textId, class: 'progress-text', 'aria-live': 'polite', 'data-testid': textId });
  const element = h('div', { class: 'progress', hidden: true }, h('label', { for: id }, label), bar, text);
  const show = (done: number, total: number, line: string) => {
    bar.max = Math.max(total, 1);
    bar.value = total === 0 ? 1 : done;
    text.textContent = line;
    element.hidden = false;
  };
  return {
    element,
    textId,
    start(total) {
      show(0, total, `0 of ${count(total)} keys ${verb}…`);
    },
    update({ done, total, keysPerSecond, secondsLeft }) {
      const rate = `${count(Math.round(keysPerSecond))} keys/s`;
      const left = done < total && secondsLeft >= 1 ? ` · about ${count(Math.ceil(secondsLeft))} s left` : '';
      show(done, total, `${count(done)} of ${count(total)} keys ${verb} · ${rate}${left}`);
    },
    reset() {
      element.hidden = true;
      bar.value = 0;
      text.textContent = '';
    },
  };
}
