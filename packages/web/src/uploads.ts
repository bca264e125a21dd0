import { type BackupProgress, type KeyBackup, LatchkeyError, type LocalKeystore } from '@latchkey/client';
import { signal } from '@preact/signals';

/** How long the background upload waits between runs; a change on this device starts one at once. */
export const UPLOAD_INTERVAL_MS = 10_000;

/**
 * The background upload as the page shows it. `backup` is what the server says of the backup; the
 * rest is this device's side: keys not yet in it, the run in flight, the last run that sent keys, and
 * the last failure (cleared by the next run that succeeds).
 */
export interface UploadState {
  backup: 'checking' | 'off' | 'on' | 'untrusted' | 'unavailable';
  version?: string | undefined;
  /** Keys the backup holds, by the server's count. */
  onServer: number;
  /** Keys this device holds. */
  onDevice: number;
  /** Keys on this device not yet in the backup. */
  pending: number;
  uploading?: BackupProgress | undefined;
  /**
   * The last progress of the latest run, kept after it ends so the bar still says what it did (until
   * the backup is off). Kept here, as it happens: a view that redraws once a frame sees only the end.
   */
  lastRun?: BackupProgress | undefined;
  lastUpload?: { at: number; uploaded: number } | undefined;
  error?: unknown;
}

/** This device's keystore and its backup, opened once per session. */
export interface Device {
  keystore: LocalKeystore;
  backup: KeyBackup;
}

/**
 * Keeps the SDK's background upload running while a backup is on and this tab holds the keys. Its
 * state is a signal: a component that reads {@link state} (or {@link unsaved}) as it draws follows the
 * upload live. One per session with keys; {@link dispose} ends it.
 */
export class Uploads {
  private readonly current = signal<UploadState>({ backup: 'checking', onServer: 0, onDevice: 0, pending: 0 });
  private running = false;
  private disposed = false;
  /** Refreshes in order, so a slow answer never overwrites a newer one; a refresh never rejects. */
  private refreshing: Promise<void> = Promise.resolve();

  constructor(readonly device: Promise<Device>) {
    void this.refresh();
  }

  get state(): Readonly<UploadState> {
    return this.current.value;
  }

  /** How many keys this device holds that the backup lacks, or a run is sending. */
  get unsaved(): number {
    const state = this.current.value;
    if (state.backup !== 'on' && state.backup !== 'untrusted') return 0;
    return Math.max(state.pending, state.uploading?.total ?? 0);
  }

  private set(patch: Partial<UploadState>): void {
    if (this.disposed) return;
    this.current.value = { ...this.current.peek(), ...patch };
  }

  /**
   * Reads the backup's status and this device's counts, and starts or stops the background upload to
   * match: it runs while a backup is on and signed by this account (an unsigned one refuses uploads).
   */
  refresh(): Promise<void> {
    this.refreshing = this.refreshing.then(() => this.readStatus());
    return this.refreshing;
  }

  private async readStatus(): Promise<void> {
    if (this.disposed) return;
    let device: Device;
    try {
      device = await this.device;
    } catch (error) {
      // The keystore does not open (sealed under an old kB, or IndexedDB refused): the backup screen says why.
      this.set({ backup: 'unavailable', error });
      return;
    }
    try {
      const [status, held] = await Promise.all([device.backup.status(), device.keystore.count()]);
      if (!status.enabled) {
        await this.stop();
        this.set({
          backup: 'off',
          version: undefined,
          onServer: 0,
          onDevice: held.persisted,
          pending: 0,
          lastRun: undefined,
          error: undefined,
        });
        return;
      }
      this.set({
        backup: status.trusted ? 'on' : 'untrusted',
        version: status.version,
        onServer: status.count,
        onDevice: held.persisted,
        pending: status.pending,
      });
      if (status.trusted) this.start(device);
      else await this.stop();
    } catch (error) {
      // The server is unreachable or the session ended: say why, count what waits from this device's own
      // records, and let the upload keep trying (it retries each turn) if the backup was on.
      this.set({ error });
      await this.countLocally(device).catch(() => undefined);
      if (this.current.peek().backup === 'on') this.start(device);
    }
  }

  private async countLocally(device: Device): Promise<void> {
    const version = this.current.peek().version;
    if (version === undefined) return;
    const [pending, held] = await Promise.all([device.keystore.pendingBackup(version), device.keystore.count()]);
    this.set({ pending: pending.length, onDevice: held.persisted });
  }

  private start(device: Device): void {
    if (this.running || this.disposed) return;
    this.running = true;
    device.backup.start(UPLOAD_INTERVAL_MS, (error) => void this.failed(error), {
      onProgress: (progress) => this.set({ uploading: progress, lastRun: progress }),
      onUploaded: ({ uploaded }) => {
        const sent = uploaded > 0 ? { lastUpload: { at: Date.now(), uploaded } } : {};
        this.set({ uploading: undefined, error: undefined, ...sent });
        // The server's count moved, and keys may have arrived during the run: read both again.
        if (uploaded > 0 || this.current.peek().pending > 0) void this.refresh();
      },
    });
  }

  private async failed(error: unknown): Promise<void> {
    this.set({ uploading: undefined, error });
    // A backup deleted or replaced elsewhere, or no longer signed by this account: read what it is now.
    if (error instanceof LatchkeyError && ['LK_BACKUP_NOT_FOUND', 'LK_BACKUP_UNTRUSTED'].includes(error.code)) {
      await this.refresh();
    }
  }

  private async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await (await this.device).backup.stop();
  }

  /** Stops the background upload (after the run in flight) until the next {@link changed}. */
  async pause(): Promise<void> {
    await this.stop();
  }

  /**
   * Keys were added on this device (an import, a restore) or the backup changed: read the counts and
   * upload at once rather than at the next turn. A run in flight finishes first; then one begins.
   */
  async changed(): Promise<void> {
    await this.stop();
    await this.refresh();
  }

  /** Ends the background upload for good (the session ended or the keystore is being erased). */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.running = false;
    await this.device.then((device) => device.backup.stop()).catch(() => undefined);
  }
}
