import {
  type BackupProgress,
  exportRoomKeys,
  importRoomKeys,
  LatchkeyError,
  type RecoverySecret,
  type Session,
} from '@latchkey/client';
import { type Signal, untracked, useSignal, useSignalEffect } from '@preact/signals';
import { type ComponentChildren, Fragment } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { type Guard, guardSession } from './account.js';
import type { App } from './app.js';
import {
  ActionForm,
  ariaBusy,
  Busy,
  Button,
  Checkbox,
  Field,
  Link,
  Panel,
  runAction,
  textIn,
  useScope,
} from './controls.js';
import { count, download } from './format.js';
import { ErrorNotice, Feedback, FeedbackRegions, useFeedback } from './notices.js';
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
export function BackupScreen({ app, session }: { app: App; session: Session }) {
  // The upload of this session, taken once: the screen follows its state (a signal) while it is shown.
  const [uploads] = useState(() => (session.hasKeys ? app.uploads() : undefined));
  if (uploads === undefined) {
    return (
      <div class="stack">
        <Panel title="Key backup">
          <p>
            This tab was reloaded, so your keys are no longer in memory, and this device’s keystore opens only with
            them. <Link route="account">Unlock them on your account page</Link>, then come back.
          </p>
        </Panel>
      </div>
    );
  }
  return <BackupOf app={app} uploads={uploads} />;
}

function BackupOf({ app, uploads }: { app: App; uploads: Uploads }) {
  const guarded = guardSession(app);
  const device = uploads.device;
  const view = useSignal<View>({ kind: 'status' });
  const say = useFeedback();
  /** The keystore was sealed under a kB a password reset replaced: the screen says that alone. */
  const stale = useSignal<LatchkeyError | undefined>(undefined);
  useEffect(() => {
    void uploads.refresh();
    device.catch((error: unknown) => {
      if (error instanceof LatchkeyError && error.code === 'LK_KEYSTORE_KEY_CHANGED') stale.value = error;
      else say.error(error);
    });
  }, []);
  // A failure before the first status is known has no upload line to show in: it shows beside the panel.
  useSignalEffect(() => {
    const { error, backup } = uploads.state;
    if (error !== undefined && backup === 'checking') say.error(error);
  });
  const back = (
    <p>
      <Link route="account">Back to your account</Link>
    </p>
  );
  if (stale.value !== undefined) {
    return (
      <div class="stack">
        <StaleKeystorePanel app={app} error={stale.value} />
        {back}
      </div>
    );
  }
  return (
    <div class="stack">
      <BackupPanel guarded={guarded} device={device} uploads={uploads} view={view} say={say} />
      <RestorePanel guarded={guarded} device={device} uploads={uploads} newKey={view.value.kind === 'new-key'} />
      <DeviceKeysPanel guarded={guarded} device={device} uploads={uploads} />
      {back}
    </div>
  );
}

/**
 * The keystore was sealed under the kB before a password reset: nothing can read it now. Say so, and
 * offer to clear it, after which the backup screen (and a restore with the recovery key) works again.
 */
function StaleKeystorePanel({ app, error }: { app: App; error: unknown }) {
  const scope = useScope();
  const [say] = useState(() => {
    const feedback = new Feedback();
    feedback.error(error);
    return feedback;
  });
  const clear = () =>
    runAction(scope, say, 'Clearing this browser’s old keys…', async () => {
      await app.eraseKeystore();
      app.go('backup', 'This browser’s old keys are cleared. Restore your keys from the backup below.');
    });
  return (
    <Panel title="Key backup" scope={scope}>
      <p data-testid="stale-keystore">
        Your password was reset since this browser last stored keys, and the keys it holds were sealed under your old
        account key: nothing can read them now. Clear them, then restore from your backup with your recovery key.
      </p>
      <div class="form-end">
        <Button class="danger" onClick={() => void clear()}>
          Clear this browser’s old keys
        </Button>
        <FeedbackRegions say={say} />
      </div>
    </Panel>
  );
}

function BackupPanel(props: {
  guarded: Guard;
  device: Promise<Device>;
  uploads: Uploads;
  view: Signal<View>;
  say: Feedback;
}) {
  const { guarded, device, uploads, view, say } = props;
  const state = uploads.state;
  const shown = view.value;
  const setView = (next: View) => {
    view.value = next;
  };
  const kind = shown.kind === 'status' ? state.backup : shown.kind;
  let actions: ComponentChildren;
  if (shown.kind === 'new-key') {
    actions = (
      <NewKeyView
        recoveryKey={shown.recoveryKey}
        onContinue={() => {
          setView({ kind: 'status' });
          // The keys on this device go up now, not at the next turn.
          void uploads.changed();
        }}
      />
    );
  } else if (kind === 'checking') actions = <p>Loading the backup’s status…</p>;
  else if (kind === 'off') actions = <SetupForm guarded={guarded} device={device} setView={setView} />;
  else if (kind === 'confirm-delete')
    actions = (
      <ConfirmDelete
        guarded={guarded}
        device={device}
        uploads={uploads}
        done={(deleted) => {
          setView({ kind: 'status' });
          if (deleted !== undefined) say.success(`Backup version ${deleted} is deleted.`);
        }}
      />
    );
  else if (kind === 'on' || kind === 'untrusted')
    actions = (
      <div class="button-row">
        <Button class="danger" onClick={() => setView({ kind: 'confirm-delete' })}>
          Delete backup…
        </Button>
      </div>
    );
  return (
    <Panel title="Key backup">
      <p class="aside">
        Your room keys are encrypted in this browser to a backup key, then uploaded in the background. The server holds
        them but cannot read them; your recovery key opens them on any device.
      </p>
      <dl class="facts">
        {shown.kind === 'new-key' ? (
          <Fact term="Backup" testId="backup-state">
            On, version {shown.version}
          </Fact>
        ) : (
          <StatusFacts state={state} retry={() => void uploads.changed()} />
        )}
      </dl>
      <Meter id="upload-progress" label="Upload progress" verb="uploaded" progress={uploadProgress(state, shown)} />
      <div class="backup-actions">{actions}</div>
      <FeedbackRegions say={say} />
    </Panel>
  );
}

/**
 * What the upload's bar shows: the run in flight, else the last one while the backup is on; nothing
 * while the new recovery key is on screen.
 */
function uploadProgress(state: UploadState, view: View): BackupProgress | undefined {
  if (view.kind === 'new-key') return undefined;
  return state.uploading ?? (state.backup === 'on' ? state.lastRun : undefined);
}

function Fact({ term, testId, children }: { term: string; testId: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{term}</dt>
      <dd data-testid={testId}>{children}</dd>
    </>
  );
}

/** The backup's facts; the upload line says what the background upload is doing, with a retry on failure. */
function StatusFacts({ state, retry }: { state: UploadState; retry: () => void }) {
  if (state.backup === 'checking')
    return (
      <Fact term="Backup" testId="backup-state">
        Checking…
      </Fact>
    );
  if (state.backup === 'unavailable')
    return (
      <Fact term="Backup" testId="backup-state">
        Unavailable: this device’s keys do not open
      </Fact>
    );
  if (state.backup === 'off') {
    return (
      <>
        <Fact term="Backup" testId="backup-state">
          Off: nothing is backed up yet
        </Fact>
        <Fact term="Keys on this device" testId="device-count">
          {count(state.onDevice)}
        </Fact>
      </>
    );
  }
  const waiting = Math.max(0, state.pending - (state.uploading?.done ?? 0));
  return (
    <>
      <Fact term="Backup" testId="backup-state">{`On, version ${state.version ?? ''}`}</Fact>
      <Fact term="Keys on the server" testId="backup-count">
        {count(state.onServer)}
      </Fact>
      <Fact term="Keys on this device" testId="device-count">
        {count(state.onDevice)}
      </Fact>
      <Fact term="Waiting to upload from this device" testId="backup-pending">
        {count(waiting)}
      </Fact>
      <Fact term="Upload" testId="upload-status">
        <UploadLine state={state} waiting={waiting} retry={retry} />
      </Fact>
      <Fact term="Signed by this account" testId="backup-trusted">
        {state.backup === 'on' ? 'yes' : 'no: this device will not upload to it (delete it and set up a new one)'}
      </Fact>
    </>
  );
}

function UploadLine({ state, waiting, retry }: { state: UploadState; waiting: number; retry: () => void }) {
  if (state.backup === 'untrusted') {
    return <span class="upload-line">Paused: this backup is not signed by your account’s current key.</span>;
  }
  if (state.uploading !== undefined) {
    const { done, total } = state.uploading;
    return <span class="upload-line">{`Uploading: ${count(done)} of ${count(total)} keys sent…`}</span>;
  }
  if (state.error !== undefined) {
    return (
      <span class="upload-line upload-error">
        <ErrorNotice error={state.error} />
        <span>{`${count(waiting)} ${waiting === 1 ? 'key waits' : 'keys wait'}; uploads retry by themselves. `}</span>
        <Button class="secondary small" onClick={retry}>
          Try again now
        </Button>
      </span>
    );
  }
  if (waiting > 0) {
    return (
      <span class="upload-line">{`${count(waiting)} ${waiting === 1 ? 'key' : 'keys'} will upload in a moment.`}</span>
    );
  }
  const last =
    state.lastUpload === undefined
      ? ''
      : ` Last upload: ${count(state.lastUpload.uploaded)} ${state.lastUpload.uploaded === 1 ? 'key' : 'keys'}, ` +
        `${clock(state.lastUpload.at)}.`;
  return <span class="upload-line">{`Up to date: every key on this device is in the backup.${last}`}</span>;
}

/** A time of day, to the second: when the last upload ended. */
function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** Backup is off: an optional passphrase, whether password logins may restore, and the button. */
function SetupForm({
  guarded,
  device,
  setView,
}: {
  guarded: Guard;
  device: Promise<Device>;
  setView: (view: View) => void;
}) {
  const passphrase = useRef<HTMLInputElement>(null);
  const confirm = useRef<HTMLInputElement>(null);
  const trust = useRef<HTMLInputElement>(null);
  const password = useRef<HTMLInputElement>(null);
  // Setting up over the keys an earlier backup left in secret storage writes over them, which the
  // server allows only after a fresh password check: the field shows only then (a first backup needs none).
  const replaces = useSignal(false);
  useEffect(() => {
    void device
      .then(({ backup }) => backup.enableReplaces())
      .then((answer) => {
        replaces.value = answer;
      })
      .catch(() => {}); // Unknown: the field stays hidden, and a refusal (LK_REAUTH_REQUIRED) says why.
  }, []);
  const setUp = async (say: Feedback) => {
    const phrase = textIn(passphrase);
    if (phrase !== textIn(confirm)) throw new Error('The two passphrases do not match.');
    if (phrase !== '') say.progress(`Deriving the backup key from your passphrase… ${STRETCHING}`);
    await guarded(async () => {
      const { backup } = await device;
      const options = {
        trustLoggedInDevices: trust.current?.checked ?? true,
        ...(phrase === '' ? {} : { passphrase: phrase }),
        ...(textIn(password) === '' ? {} : { password: textIn(password) }),
      };
      const { version, recoveryKey } = await backup.enable(options);
      setView({ kind: 'new-key', version, recoveryKey });
    })();
  };
  return (
    <div>
      <h3>Set up backup</h3>
      <ActionForm submit="Set up backup" progress="Setting up backup…" action={setUp}>
        <Field
          label="New backup passphrase (optional)"
          name="backup-passphrase"
          type="password"
          autocomplete="new-password"
          hint="Lets you restore with a passphrase as well as with the recovery key. Leave empty for the key only."
          required={false}
          inputRef={passphrase}
        />
        <Field
          label="Confirm backup passphrase"
          name="backup-passphrase-confirm"
          type="password"
          autocomplete="new-password"
          required={false}
          inputRef={confirm}
        />
        <Checkbox
          label="Let devices that log in with my password restore the backup"
          name="backup-trust"
          defaultChecked
          inputRef={trust}
        />
        <Field
          label="Your password, to confirm"
          name="setup-backup-password"
          type="password"
          autocomplete="current-password"
          hint="An earlier backup left its keys on the server; setting up a new one replaces them."
          hidden={!replaces.value}
          required={replaces.value}
          inputRef={password}
        />
      </ActionForm>
    </div>
  );
}

/**
 * The recovery key, shown once: in groups of four for reading aloud or copying by hand, with Copy and
 * Download, and a tick box that must be ticked before the key is dropped from the page.
 */
function NewKeyView({ recoveryKey, onContinue }: { recoveryKey: string; onContinue: () => void }) {
  const scope = useScope();
  const say = useFeedback();
  const saved = useSignal(false);
  const keyText = useRef<HTMLParagraphElement>(null);
  useEffect(() => keyText.current?.focus(), []);
  const copy = () =>
    runAction(scope, say, 'Copying…', async () => {
      await navigator.clipboard.writeText(recoveryKey);
      say.success('Recovery key copied to the clipboard.');
    });
  const save = () => {
    download(RECOVERY_KEY_FILE, `${recoveryKey}\n`);
    say.success(`Recovery key saved as ${RECOVERY_KEY_FILE}.`);
  };
  const groups = recoveryKey.split(' ');
  return (
    <div class="new-key">
      <h3>Your recovery key</h3>
      <p>
        <strong>This is the only time it is shown. </strong>
        With it, any device can read your backed-up keys; without it (or your passphrase) they are lost if you lose
        every device. Keep it somewhere safe, apart from your password.
      </p>
      {/* biome-ignore lint/a11y/useAriaPropsSupportedByRole: focus lands here, and the name says what is read out; as the page always had it */}
      <p class="recovery-key" data-testid="recovery-key" tabIndex={-1} aria-label="Recovery key" ref={keyText}>
        {/* Spaces between the groups keep the text (for copy, and for the test) exactly the key. */}
        {groups.map((group, i) => (
          <Fragment key={i}>
            {i > 0 && ' '}
            <span>{group}</span>
          </Fragment>
        ))}
      </p>
      <Busy scope={scope}>
        <div class="button-row" aria-busy={ariaBusy(scope)}>
          <Button class="secondary" onClick={() => void copy()}>
            Copy
          </Button>
          <Button class="secondary" onClick={save}>
            Download
          </Button>
        </div>
      </Busy>
      <FeedbackRegions say={say} />
      <Checkbox
        label="I have saved my recovery key"
        name="recovery-key-saved"
        onChange={(checked) => {
          saved.value = checked;
        }}
      />
      <Button disabled={!saved.value} onClick={onContinue}>
        Continue
      </Button>
    </div>
  );
}

function ConfirmDelete(props: {
  guarded: Guard;
  device: Promise<Device>;
  uploads: Uploads;
  done: (deleted?: string) => void;
}) {
  const { guarded, device, uploads, done } = props;
  // What the user is asked about is the backup as it was when they asked: that is the version deleted.
  const [{ onServer, version = '' }] = useState(() => untracked(() => uploads.state));
  const scope = useScope();
  const say = useFeedback();
  const password = useRef<HTMLInputElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  const remove = () =>
    runAction(
      scope,
      say,
      'Deleting the backup…',
      guarded(async () => {
        // No upload may run into a version being deleted.
        await uploads.pause();
        try {
          // The server deletes only after a fresh password check: a session token alone must not wipe the backup.
          await (await device).backup.delete(version, { password: textIn(password) });
        } finally {
          await uploads.changed();
        }
        done(version);
      }),
    );
  const keysOnServer = onServer === 1 ? '1 key' : `${count(onServer)} keys`;
  return (
    <Busy scope={scope}>
      {/* biome-ignore lint/a11y/useSemanticElements: a fieldset would bring its own border and disabling; the group is the same to a reader */}
      <div class="confirm" role="group" aria-label="Confirm deleting the backup" aria-busy={ariaBusy(scope)}>
        <p>
          {`Delete backup version ${version} and the ${keysOnServer} in it from the server? `}A device without its own
          copy can no longer get them back. The keys on this device stay.
        </p>
        <Field
          label="Your password, to confirm"
          name="delete-backup-password"
          type="password"
          autocomplete="current-password"
          inputRef={password}
        />
        <div class="button-row">
          <Button class="danger" onClick={() => void remove()}>
            Yes, delete the backup
          </Button>
          <Button class="secondary" buttonRef={cancel} onClick={() => done()}>
            Cancel
          </Button>
        </div>
        <FeedbackRegions say={say} />
      </div>
    </Busy>
  );
}

/** Where the restore's bar and result show: after the way that was used, so they are where the user is. */
type Place = 'key' | 'passphrase' | 'login' | 'end';

/**
 * Restore on a new device: the recovery key, else the passphrase, else the password login. On a device
 * that already holds every key the backup has, the ways to restore stay folded behind a plain sentence.
 */
function RestorePanel(props: { guarded: Guard; device: Promise<Device>; uploads: Uploads; newKey: boolean }) {
  const { guarded, device, uploads } = props;
  const recoveryKey = useRef<HTMLInputElement>(null);
  const passphrase = useRef<HTMLInputElement>(null);
  const progress = useSignal<BackupProgress | undefined>(undefined);
  const result = useSignal<string | undefined>(undefined);
  const place = useSignal<Place>('end');
  const unfolded = useSignal(false);
  const trustedScope = useScope();
  const trustedSay = useFeedback();
  const outcome = useRef<HTMLDivElement>(null);
  /** The restore began: bring its bar into view once it is drawn. */
  const scrollToOutcome = useRef(false);
  useLayoutEffect(() => {
    if (!scrollToOutcome.current) return;
    scrollToOutcome.current = false;
    outcome.current?.scrollIntoView({ block: 'nearest' });
  });
  const run = (secret: () => RecoverySecret, at: Place) =>
    guarded(async () => {
      result.value = undefined;
      progress.value = undefined;
      place.value = at;
      const { backup } = await device;
      const restored = await backup.restore(secret(), (next) => {
        progress.value = next;
        if (next.done === 0) scrollToOutcome.current = true;
      });
      // The key and passphrase open the backup from anywhere: leave neither in the page once used.
      for (const input of [recoveryKey, passphrase]) if (input.current !== null) input.current.value = '';
      result.value = restoreResult(restored);
      await uploads.changed();
    });

  const state = uploads.state;
  // Restoring is for a backup that exists, and waits while the new recovery key is on screen.
  const hidden = props.newKey || (state.backup !== 'on' && state.backup !== 'untrusted');
  // Keys this device holds that the backup has: those it marked as uploaded to this version.
  const missing = Math.max(0, state.onServer - (state.onDevice - state.pending));
  const lacking = missing > 0;
  const waysHidden = !lacking && !unfolded.value;
  // Folding the ways away keeps the last result in sight, after them.
  const at = waysHidden ? 'end' : place.value;
  const outcomeBox = (
    <div class="restore-outcome" ref={outcome}>
      <Meter id="restore-progress" label="Restore progress" verb="restored" progress={progress.value} />
      <p class="result" data-testid="restore-result" hidden={result.value === undefined}>
        {result.value}
      </p>
    </div>
  );
  const unfold = () => {
    unfolded.value = true;
    // Once drawn unfolded, the first way to restore takes the keyboard.
    requestAnimationFrame(() => recoveryKey.current?.focus());
  };
  return (
    <Panel title="Restore keys from the backup" hidden={hidden}>
      <p class="aside" data-testid="restore-explanation">
        {lacking
          ? `The backup holds ${count(missing)} ${missing === 1 ? 'key' : 'keys'} this device does not have. ` +
            'Bring them here with your recovery key, your backup passphrase or your login. Nothing is ' +
            'imported unless the key opens the backup.'
          : 'Nothing to restore: this device already holds every key in the backup. Restoring is for a new ' +
            'device, or one that has lost its keys.'}
      </p>
      <p hidden={lacking || unfolded.value}>
        <Button
          class="secondary small"
          aria-expanded={waysHidden ? 'false' : 'true'}
          aria-controls="restore-ways"
          onClick={unfold}
        >
          Show the ways to restore
        </Button>
      </p>
      <div id="restore-ways" class="restore-ways" hidden={waysHidden}>
        <ActionForm
          submit="Restore with recovery key"
          progress="Restoring keys…"
          class="wide"
          action={run(() => ({ recoveryKey: textIn(recoveryKey) }), 'key')}
        >
          <Field
            label="Recovery key"
            name="recovery-key"
            autocomplete="off"
            hint="48 characters in groups of four, starting with Es. Spaces do not matter."
            spellcheck={false}
            class="mono"
            inputRef={recoveryKey}
          />
        </ActionForm>
        {at === 'key' && outcomeBox}
        <h3>Or with your backup passphrase</h3>
        <ActionForm
          submit="Restore with passphrase"
          progress={`Deriving the key from your passphrase… ${STRETCHING}`}
          action={run(() => ({ passphrase: textIn(passphrase) }), 'passphrase')}
        >
          <Field
            label="Backup passphrase"
            name="restore-passphrase"
            type="password"
            autocomplete="off"
            inputRef={passphrase}
          />
        </ActionForm>
        {at === 'passphrase' && outcomeBox}
        <Busy scope={trustedScope}>
          <div aria-busy={ariaBusy(trustedScope)}>
            <h3>Or through your password login</h3>
            <p class="aside">Works if the backup was set up to let devices that log in with your password restore.</p>
            <div class="form-end">
              <Button
                class="secondary"
                onClick={() =>
                  void runAction(
                    trustedScope,
                    trustedSay,
                    'Restoring keys…',
                    run(() => ({ trustedDevice: true }), 'login'),
                  )
                }
              >
                Restore using this login
              </Button>
              <FeedbackRegions say={trustedSay} />
            </div>
            {at === 'login' && outcomeBox}
          </div>
        </Busy>
      </div>
      {at === 'end' && outcomeBox}
    </Panel>
  );
}

/** What a restore did, in a sentence: how many keys came in, failed, or were refused as misfiled. */
function restoreResult(outcome: {
  version: string;
  total: number;
  imported: number;
  failed: number;
  refused: number;
}): string {
  const failed = outcome.failed === 0 ? 'none failed' : `${count(outcome.failed)} failed to decrypt`;
  const refused =
    outcome.refused === 0
      ? ''
      : ` ${count(outcome.refused)} were refused: they are filed under a room or session that is not their own, ` +
        'so the server (or whoever wrote them) altered the backup.';
  const text =
    `Imported ${count(outcome.imported)} of the ${count(outcome.total)} keys in backup version ` +
    `${outcome.version}; ${failed}.${refused}`;
  return outcome.imported < outcome.total - outcome.failed - outcome.refused
    ? `${text} The others were already on this device.`
    : text;
}

/** The keys this browser holds: import a Matrix key export file, or export them to one. */
function DeviceKeysPanel({ guarded, device, uploads }: { guarded: Guard; device: Promise<Device>; uploads: Uploads }) {
  const file = useRef<HTMLInputElement>(null);
  const importPassphrase = useRef<HTMLInputElement>(null);
  const exportPassphrase = useRef<HTMLInputElement>(null);
  const exportConfirm = useRef<HTMLInputElement>(null);
  const importKeys = (say: Feedback) =>
    guarded(async () => {
      const chosen = file.current?.files?.[0];
      if (chosen === undefined) throw new Error('Choose a key export file first.');
      const { keystore } = await device;
      const { total, imported } = await importRoomKeys(keystore, await chosen.text(), textIn(importPassphrase));
      const already = total - imported;
      await uploads.changed();
      // Said only when true now: the upload has started. (Advice to set one up would outlive the moment.)
      const next = uploads.state.backup === 'on' && imported > 0 ? ' They are going up to your backup now.' : '';
      say.success(
        `Imported ${count(imported)} of the ${count(total)} keys in ${chosen.name}` +
          (already === 0 ? '.' : `; this device already had ${count(already)} of them.`) +
          next,
      );
    })();
  const exportKeys = (say: Feedback) =>
    guarded(async () => {
      const phrase = textIn(exportPassphrase);
      if (phrase === '') throw new Error('Choose a passphrase for the export file.');
      if (phrase !== textIn(exportConfirm)) throw new Error('The two passphrases do not match.');
      const { keystore } = await device;
      const exported = await exportRoomKeys(keystore, phrase);
      download(KEY_EXPORT_FILE, exported.text);
      say.success(`Exported ${count(exported.count)} ${exported.count === 1 ? 'key' : 'keys'} to ${KEY_EXPORT_FILE}.`);
    })();
  return (
    <Panel title="Keys on this device">
      <p class="aside">
        Key export files (“MEGOLM SESSION DATA”) move keys between Matrix clients such as Element and this one. When a
        backup is on, imported keys go up to it by themselves.
      </p>
      <h3>Import keys from a key export file</h3>
      <ActionForm submit="Import keys" progress={`Decrypting the file… ${STRETCHING}`} action={importKeys}>
        <Field label="Key export file" name="import-file" type="file" accept=".txt,text/plain" inputRef={file} />
        <Field
          label="File passphrase"
          name="import-passphrase"
          type="password"
          autocomplete="off"
          inputRef={importPassphrase}
        />
      </ActionForm>
      <h3>Export the keys on this device</h3>
      <ActionForm submit="Export keys" progress={`Encrypting the file… ${STRETCHING}`} action={exportKeys}>
        <Field
          label="Passphrase for the export file"
          name="export-passphrase"
          type="password"
          autocomplete="new-password"
          hint="Whoever has the file and this passphrase can read your keys."
          inputRef={exportPassphrase}
        />
        <Field
          label="Confirm export passphrase"
          name="export-passphrase-confirm"
          type="password"
          autocomplete="new-password"
          inputRef={exportConfirm}
        />
      </ActionForm>
    </Panel>
  );
}

/**
 * A progress bar with a text line (keys done of total, keys per second, time left), hidden while there
 * is no progress. The text line is a polite live region, so a screen reader hears the count without
 * losing its place.
 */
function Meter(props: { id: string; label: string; verb: string; progress: BackupProgress | undefined }) {
  const { id, progress } = props;
  const textId = `${id}-text`;
  let line = '';
  if (progress !== undefined) {
    const { done, total, keysPerSecond, secondsLeft } = progress;
    const rate = `${count(Math.round(keysPerSecond))} keys/s`;
    const left = done < total && secondsLeft >= 1 ? ` · about ${count(Math.ceil(secondsLeft))} s left` : '';
    line = `${count(done)} of ${count(total)} keys ${props.verb} · ${rate}${left}`;
  }
  const total = progress?.total ?? 0;
  return (
    <div class="progress" hidden={progress === undefined}>
      <label for={id}>{props.label}</label>
      <progress id={id} max={Math.max(total, 1)} value={progress === undefined ? 0 : total === 0 ? 1 : progress.done} />
      <p id={textId} class="progress-text" aria-live="polite" data-testid={textId}>
        {line}
      </p>
    </div>
  );
}
