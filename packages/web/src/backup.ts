import {
  type BackupProgress,
  exportRoomKeys,
  importRoomKeys,
  LatchkeyError,
  type RecoverySecret,
  type Session,
} from '@latchkey/client';
import { type Guard, guardSession } from './account.js';
import type { App } from './app.js';
import { checkbox, count, download, errorNotice, feedback, field, form, h, link, panel, runAction } from './ui.js';
import type { Device, UploadState, Uploads } from './uploads.js';

/** The file names the browser suggests; the user may rename them. */
export const RECOVERY_KEY_FILE = 'latchkey-recovery-key.txt';
export const KEY_EXPORT_FILE = 'latchkey-keys.txt';

/** PBKDF2 with 500,000 rounds runs in this tab, so the passphrase steps say that they take a while. */
const STRETCHING = '(the passphrase is stretched on purpose; this takes a few seconds)';

/**
 * What the backup panel's actions show. The recovery key exists only in the `new-key` state, the one
 * time it is shown; leaving that state drops it. Deleting needs the `confirm-delete` state first.
 * The facts and the upload line follow the background upload's state live, whatever the view.
 */
type View = { kind: 'status' } | { kind: 'new-key'; version: string; recoveryKey: string } | { kind: 'confirm-delete' };

/**
 * Key backup for this browser's keystore: set up (recovery key shown once), the background upload
 * shown live, restore on a new device with the recovery key, a passphrase or the password login,
 * delete; and the Matrix key export files, to bring keys in from another client or take them out.
 */
export function backupScreen(app: App, session: Session): HTMLElement {
  const uploads = session.hasKeys ? app.uploads() : undefined;
  if (uploads === undefined) {
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
  const device = uploads.device;

  const facts = h('dl', { class: 'facts' });
  const actions = h('div', { class: 'backup-actions' }, h('p', {}, 'Loading the backup’s status…'));
  const meter = progressMeter('upload-progress', 'Upload progress', 'uploaded');
  const say = feedback();
  const backupPanel = panel(
    'Key backup',
    h(
      'p',
      { class: 'aside' },
      'Your room keys are encrypted in this browser to a backup key, then uploaded in the background. The ' +
        'server holds them but cannot read them; your recovery key opens them on any device.',
    ),
    facts,
    meter.element,
    actions,
    say.element,
  );
  const restore = restorePanel(guarded, device, uploads);
  const keys = deviceKeysPanel(guarded, device, uploads);

  let view: View = { kind: 'status' };
  /** What the actions area shows now, so a state change redraws it only when it must. */
  let drawn: string | undefined;
  const setView = (next: View) => {
    view = next;
    drawn = undefined;
    draw(uploads.state);
  };
  const draw = (state: UploadState) => {
    restore.update(state, view.kind === 'new-key');
    if (view.kind === 'new-key') {
      if (drawn === 'new-key') return;
      drawn = 'new-key';
      facts.replaceChildren(
        h('dt', {}, 'Backup'),
        h('dd', { 'data-testid': 'backup-state' }, `On, version ${view.version}`),
      );
      meter.reset();
      actions.replaceChildren(
        newKeyView(view, () => {
          setView({ kind: 'status' });
          // The keys on this device go up now, not at the next turn.
          void uploads.changed();
        }),
      );
      return;
    }
    facts.replaceChildren(...statusFacts(state, () => void uploads.changed()));
    if (state.uploading !== undefined) meter.update(state.uploading);
    else if (state.backup !== 'on') meter.reset();
    const kind = view.kind === 'confirm-delete' ? 'confirm-delete' : state.backup;
    if (kind === drawn) return;
    drawn = kind;
    if (kind === 'checking') actions.replaceChildren(h('p', {}, 'Loading the backup’s status…'));
    else if (kind === 'unavailable') actions.replaceChildren();
    else if (kind === 'off') actions.replaceChildren(setupForm(guarded, device, (next) => setView(next)));
    else if (kind === 'confirm-delete')
      actions.replaceChildren(
        confirmDelete(state, guarded, device, uploads, (deleted) => {
          setView({ kind: 'status' });
          if (deleted !== undefined) say.success(`Backup version ${deleted} is deleted.`);
        }),
      );
    else actions.replaceChildren(onActions(() => setView({ kind: 'confirm-delete' })));
  };

  const back = h('p', {}, link('account', 'Back to your account'));
  const screen = h('div', { class: 'stack' }, backupPanel, restore.element, keys, back);
  // The screen follows the upload until it leaves the page (another screen replaced it).
  let shown = false;
  const unsubscribe = uploads.subscribe((state) => {
    if (shown && !screen.isConnected) return void unsubscribe();
    draw(state);
    if (state.error !== undefined && state.backup === 'checking') say.error(state.error);
  });
  requestAnimationFrame(() => {
    shown = true;
  });
  void uploads.refresh();
  device.catch((error: unknown) => {
    if (error instanceof LatchkeyError && error.code === 'LK_KEYSTORE_KEY_CHANGED')
      screen.replaceChildren(staleKeystorePanel(app, error), back);
    else say.error(error);
  });
  return screen;
}

/**
 * The keystore was sealed under the kB before a password reset: nothing can read it now. Say so, and
 * offer to clear it, after which the backup screen (and a restore with the recovery key) works again.
 */
function staleKeystorePanel(app: App, error: unknown): HTMLElement {
  const clear = h('button', { type: 'button', class: 'danger' }, 'Clear this browser’s old keys');
  const say = feedback();
  const section = panel(
    'Key backup',
    h(
      'p',
      { 'data-testid': 'stale-keystore' },
      'Your password was reset since this browser last stored keys, and the keys it holds were sealed under ' +
        'your old account key: nothing can read them now. Clear them, then restore from your backup with ' +
        'your recovery key.',
    ),
    h('div', { class: 'form-end' }, clear, say.element),
  );
  say.error(error);
  clear.addEventListener('click', () => {
    void runAction(section, say, 'Clearing this browser’s old keys…', async () => {
      await app.eraseKeystore();
      app.go('backup', 'This browser’s old keys are cleared. Restore your keys from the backup below.');
    });
  });
  return section;
}

/** The backup's facts; the upload line says what the background upload is doing, with a retry on failure. */
function statusFacts(state: UploadState, retry: () => void): HTMLElement[] {
  const fact = (term: string, value: Node | string, testId: string) => [
    h('dt', {}, term),
    h('dd', { 'data-testid': testId }, value),
  ];
  if (state.backup === 'checking') return fact('Backup', 'Checking…', 'backup-state');
  if (state.backup === 'unavailable')
    return fact('Backup', 'Unavailable: this device’s keys do not open', 'backup-state');
  if (state.backup === 'off') {
    return [
      ...fact('Backup', 'Off: nothing is backed up yet', 'backup-state'),
      ...fact('Keys on this device', count(state.onDevice), 'device-count'),
    ];
  }
  const waiting = Math.max(0, state.pending - (state.uploading?.done ?? 0));
  return [
    ...fact('Backup', `On, version ${state.version ?? ''}`, 'backup-state'),
    ...fact('Keys on the server', count(state.onServer), 'backup-count'),
    ...fact('Keys on this device', count(state.onDevice), 'device-count'),
    ...fact('Waiting to upload from this device', count(waiting), 'backup-pending'),
    ...fact('Upload', uploadLine(state, waiting, retry), 'upload-status'),
    ...fact(
      'Signed by this account',
      state.backup === 'on' ? 'yes' : 'no: this device will not upload to it (delete it and set up a new one)',
      'backup-trusted',
    ),
  ];
}

function uploadLine(state: UploadState, waiting: number, retry: () => void): HTMLElement {
  const line = h('span', { class: 'upload-line' });
  const last =
    state.lastUpload === undefined
      ? ''
      : ` Last upload: ${count(state.lastUpload.uploaded)} ${state.lastUpload.uploaded === 1 ? 'key' : 'keys'}, ` +
        `${clock(state.lastUpload.at)}.`;
  if (state.backup === 'untrusted') {
    line.append('Paused: this backup is not signed by your account’s current key.');
  } else if (state.uploading !== undefined) {
    const { done, total } = state.uploading;
    line.append(`Uploading: ${count(done)} of ${count(total)} keys sent…`);
  } else if (state.error !== undefined) {
    const again = h('button', { type: 'button', class: 'secondary small' }, 'Try again now');
    again.addEventListener('click', retry);
    line.classList.add('upload-error');
    line.append(
      errorNotice(state.error),
      h('span', {}, `${count(waiting)} ${waiting === 1 ? 'key waits' : 'keys wait'}; uploads retry by themselves. `),
      again,
    );
  } else if (waiting > 0) {
    line.append(`${count(waiting)} ${waiting === 1 ? 'key' : 'keys'} will upload in a moment.`);
  } else {
    line.append(`Up to date: every key on this device is in the backup.${last}`);
  }
  return line;
}

/** A time of day, to the second: when the last upload ended. */
function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** Backup is off: an optional passphrase, whether password logins may restore, and the button. */
function setupForm(guarded: Guard, device: Promise<Device>, setView: (view: View) => void): HTMLElement {
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
  // Setting up over the keys an earlier backup left in secret storage writes over them, which the
  // server allows only after a fresh password check: the field shows only then (a first backup needs none).
  const password = field('Your password, to confirm', {
    name: 'setup-backup-password',
    type: 'password',
    autocomplete: 'current-password',
    hint: 'An earlier backup left its keys on the server; setting up a new one replaces them.',
  });
  password.row.hidden = true;
  password.input.required = false;
  void device
    .then(({ backup }) => backup.enableReplaces())
    .then((replaces) => {
      password.row.hidden = !replaces;
      password.input.required = replaces;
    })
    .catch(() => {}); // Unknown: the field stays hidden, and a refusal (LK_REAUTH_REQUIRED) says why.
  const element = h(
    'div',
    {},
    h('h3', {}, 'Set up backup'),
    form('Set up backup', 'Setting up backup…', [passphrase.row, confirm.row, trust.row, password.row], async (say) => {
      const phrase = passphrase.input.value;
      if (phrase !== confirm.input.value) throw new Error('The two passphrases do not match.');
      if (phrase !== '') say.progress(`Deriving the backup key from your passphrase… ${STRETCHING}`);
      await guarded(async () => {
        const { backup } = await device;
        const options = {
          trustLoggedInDevices: trust.input.checked,
          ...(phrase === '' ? {} : { passphrase: phrase }),
          ...(password.input.value === '' ? {} : { password: password.input.value }),
        };
        const { version, recoveryKey } = await backup.enable(options);
        setView({ kind: 'new-key', version, recoveryKey });
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
  const say = feedback();
  const buttons = h('div', { class: 'button-row' }, copy, save);
  copy.addEventListener('click', () => {
    void runAction(buttons, say, 'Copying…', async () => {
      await navigator.clipboard.writeText(view.recoveryKey);
      say.success('Recovery key copied to the clipboard.');
    });
  });
  save.addEventListener('click', () => {
    download(RECOVERY_KEY_FILE, `${view.recoveryKey}\n`);
    say.success(`Recovery key saved as ${RECOVERY_KEY_FILE}.`);
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
    say.element,
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

/** Backup is on: uploads need no button; deleting starts with a confirmation. */
function onActions(confirm: () => void): HTMLElement {
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete backup…');
  remove.addEventListener('click', confirm);
  return h('div', { class: 'button-row' }, remove);
}

function confirmDelete(
  state: UploadState,
  guarded: Guard,
  device: Promise<Device>,
  uploads: Uploads,
  done: (deleted?: string) => void,
): HTMLElement {
  const yes = h('button', { type: 'button', class: 'danger' }, 'Yes, delete the backup');
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  // The server deletes only after a fresh password check: a session token alone must not wipe the backup.
  const password = field('Your password, to confirm', {
    name: 'delete-backup-password',
    type: 'password',
    autocomplete: 'current-password',
  });
  const say = feedback();
  const keysOnServer = state.onServer === 1 ? '1 key' : `${count(state.onServer)} keys`;
  const version = state.version ?? '';
  const element = h(
    'div',
    { class: 'confirm', role: 'group', 'aria-label': 'Confirm deleting the backup' },
    h(
      'p',
      {},
      `Delete backup version ${version} and the ${keysOnServer} in it from the server? ` +
        'A device without its own copy can no longer get them back. The keys on this device stay.',
    ),
    password.row,
    h('div', { class: 'button-row' }, yes, cancel),
    say.element,
  );
  yes.addEventListener('click', () => {
    void runAction(
      element,
      say,
      'Deleting the backup…',
      guarded(async () => {
        // No upload may run into a version being deleted.
        await uploads.pause();
        try {
          await (await device).backup.delete(version, { password: password.input.value });
        } finally {
          await uploads.changed();
        }
        done(version);
      }),
    );
  });
  cancel.addEventListener('click', () => done());
  queueMicrotask(() => cancel.focus());
  return element;
}

/**
 * Restore on a new device: the recovery key, else the passphrase, else the password login. On a device
 * that already holds every key the backup has, the ways to restore stay folded behind a plain sentence.
 */
function restorePanel(
  guarded: Guard,
  device: Promise<Device>,
  uploads: Uploads,
): { element: HTMLElement; update(state: UploadState, newKey: boolean): void } {
  const meter = progressMeter('restore-progress', 'Restore progress', 'restored');
  const result = h('p', { class: 'result', 'data-testid': 'restore-result', hidden: true });
  // The bar and the result follow the action that was used, so they show where the user is.
  const outcomeBox = h('div', { class: 'restore-outcome' }, meter.element, result);
  const run = (secret: () => RecoverySecret, place: HTMLElement) => async () =>
    guarded(async () => {
      result.hidden = true;
      meter.reset();
      place.after(outcomeBox);
      const { backup } = await device;
      const outcome = await backup.restore(secret(), (progress) => {
        meter.update(progress);
        if (progress.done === 0) outcomeBox.scrollIntoView({ block: 'nearest' });
      });
      // The key and passphrase open the backup from anywhere: leave neither in the page once used.
      recoveryKey.input.value = '';
      passphrase.input.value = '';
      const failed = outcome.failed === 0 ? 'none failed' : `${count(outcome.failed)} failed to decrypt`;
      const refused =
        outcome.refused === 0
          ? ''
          : ` ${count(outcome.refused)} were refused: they are filed under a room or session that is not their own, ` +
            'so the server (or whoever wrote them) altered the backup.';
      const text =
        `Imported ${count(outcome.imported)} of the ${count(outcome.total)} keys in backup version ` +
        `${outcome.version}; ${failed}.${refused}`;
      result.textContent =
        outcome.imported < outcome.total - outcome.failed - outcome.refused
          ? `${text} The others were already on this device.`
          : text;
      result.hidden = false;
      await uploads.changed();
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
  const byKey: HTMLFormElement = form('Restore with recovery key', 'Restoring keys…', [recoveryKey.row], () =>
    run(() => ({ recoveryKey: recoveryKey.input.value }), byKey)(),
  );
  byKey.classList.add('wide');
  const byPassphrase: HTMLFormElement = form(
    'Restore with passphrase',
    `Deriving the key from your passphrase… ${STRETCHING}`,
    [passphrase.row],
    () => run(() => ({ passphrase: passphrase.input.value }), byPassphrase)(),
  );
  const trusted = h('button', { type: 'button', class: 'secondary' }, 'Restore using this login');
  const trustedSay = feedback();
  const trustedRow = h('div', { class: 'form-end' }, trusted, trustedSay.element);
  const byLogin = h(
    'div',
    {},
    h('h3', {}, 'Or through your password login'),
    h('p', { class: 'aside' }, 'Works if the backup was set up to let devices that log in with your password restore.'),
    trustedRow,
  );
  const intro = h('p', { class: 'aside', 'data-testid': 'restore-explanation' });
  const unfold = h(
    'button',
    { type: 'button', class: 'secondary small', 'aria-expanded': 'false' },
    'Show the ways to restore',
  );
  const ways = h(
    'div',
    { id: 'restore-ways', class: 'restore-ways' },
    byKey,
    h('h3', {}, 'Or with your backup passphrase'),
    byPassphrase,
    byLogin,
  );
  unfold.setAttribute('aria-controls', ways.id);
  const element = panel('Restore keys from the backup', intro, h('p', {}, unfold), ways, outcomeBox);
  trusted.addEventListener('click', () => {
    void runAction(
      byLogin,
      trustedSay,
      'Restoring keys…',
      run(() => ({ trustedDevice: true }), trustedRow),
    );
  });
  let unfolded = false;
  let lacking = true;
  const fold = () => {
    ways.hidden = !lacking && !unfolded;
    // Folding the ways away keeps the last result in sight.
    if (ways.hidden && ways.contains(outcomeBox)) ways.after(outcomeBox);
    unfold.parentElement?.toggleAttribute('hidden', lacking || unfolded);
    unfold.setAttribute('aria-expanded', String(!ways.hidden));
  };
  unfold.addEventListener('click', () => {
    unfolded = true;
    fold();
    byKey.querySelector('input')?.focus();
  });
  element.hidden = true;
  return {
    element,
    update(state, newKey) {
      // Restoring is for a backup that exists, and waits while the new recovery key is on screen.
      element.hidden = newKey || (state.backup !== 'on' && state.backup !== 'untrusted');
      if (element.hidden) return;
      // Keys this device holds that the backup has: those it marked as uploaded to this version.
      const here = state.onDevice - state.pending;
      const missing = Math.max(0, state.onServer - here);
      lacking = missing > 0;
      intro.textContent = lacking
        ? `The backup holds ${count(missing)} ${missing === 1 ? 'key' : 'keys'} this device does not have. ` +
          'Bring them here with your recovery key, your backup passphrase or your login. Nothing is ' +
          'imported unless the key opens the backup.'
        : `Nothing to restore: this device already holds every key in the backup. Restoring is for a new ` +
          'device, or one that has lost its keys.';
      fold();
    },
  };
}

/** The keys this browser holds: import a Matrix key export file, or export them to one. */
function deviceKeysPanel(guarded: Guard, device: Promise<Device>, uploads: Uploads): HTMLElement {
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
        'When a backup is on, imported keys go up to it by themselves.',
    ),
    h('h3', {}, 'Import keys from a key export file'),
    form('Import keys', `Decrypting the file… ${STRETCHING}`, [file.row, importPassphrase.row], (say) =>
      guarded(async () => {
        const chosen = file.input.files?.[0];
        if (chosen === undefined) throw new Error('Choose a key export file first.');
        const { keystore } = await device;
        const { total, imported } = await importRoomKeys(keystore, await chosen.text(), importPassphrase.input.value);
        const already = total - imported;
        await uploads.changed();
        // Said only when true now: the upload has started. (Advice to set one up would outlive the moment.)
        const next = uploads.state.backup === 'on' && imported > 0 ? ' They are going up to your backup now.' : '';
        say.success(
          `Imported ${count(imported)} of the ${count(total)} keys in ${chosen.name}` +
            (already === 0 ? '.' : `; this device already had ${count(already)} of them.`) +
            next,
        );
      })(),
    ),
    h('h3', {}, 'Export the keys on this device'),
    form('Export keys', `Encrypting the file… ${STRETCHING}`, [exportPassphrase.row, exportConfirm.row], (say) =>
      guarded(async () => {
        const phrase = exportPassphrase.input.value;
        if (phrase === '') throw new Error('Choose a passphrase for the export file.');
        if (phrase !== exportConfirm.input.value) throw new Error('The two passphrases do not match.');
        const { keystore } = await device;
        const exported = await exportRoomKeys(keystore, phrase);
        download(KEY_EXPORT_FILE, exported.text);
        say.success(
          `Exported ${count(exported.count)} ${exported.count === 1 ? 'key' : 'keys'} to ${KEY_EXPORT_FILE}.`,
        );
      })(),
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
