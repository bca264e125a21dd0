/** What a progress display needs to know: the SDK's `BackupProgress` without its phase. */
export interface ProgressSnapshot {
  done: number;
  total: number;
  keysPerSecond: number;
  secondsLeft: number;
}

/**
 * How progress shows: redrawn in place on a terminal, one line per tenth when stderr is a file or a
 * pipe (a log stays readable), nothing under `--json` (stderr then carries errors only).
 */
export type ProgressMode = 'redraw' | 'lines' | 'silent';

export function progressMode(options: { json: boolean; tty: boolean }): ProgressMode {
  if (options.json) return 'silent';
  return options.tty ? 'redraw' : 'lines';
}

/** `10000` as `10,000`, the same on every locale. */
export function formatCount(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Seconds as people read a countdown: `1s`, `2m 05s`, `1h 02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One line of progress: `[#####.....] 5,000/10,000 keys · 8,200 keys/s · 1s left`. The rate and time
 * are left out until there is a rate to show; the end says `done`.
 */
export function formatProgress(progress: ProgressSnapshot, width = 10): string {
  const { done, total } = progress;
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const filled = Math.floor(fraction * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const parts = [`${bar} ${formatCount(done)}/${formatCount(total)} keys`];
  if (progress.keysPerSecond > 0 && Number.isFinite(progress.keysPerSecond)) {
    parts.push(`${formatCount(progress.keysPerSecond)} keys/s`);
  }
  if (done >= total) parts.push('done');
  else if (progress.keysPerSecond > 0 && Number.isFinite(progress.secondsLeft)) {
    parts.push(`${formatDuration(progress.secondsLeft)} left`);
  }
  return parts.join(' · ');
}

/** Which tenth of the way `done` is (0 to 10); an empty job is complete. */
export function tenthDone(done: number, total: number): number {
  if (total <= 0) return 10;
  return Math.min(10, Math.floor((done * 10) / total));
}

/** The least time between two redraws on a terminal, so a fast job does not flood it. */
const REDRAW_MS = 100;

/** A progress bar on `stream` in the given mode. Call {@link update} as work advances, {@link end} once. */
export class ProgressDisplay {
  private lastTenth = 0;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly mode: ProgressMode,
    private readonly now: () => number = () => performance.now(),
  ) {}

  update(progress: ProgressSnapshot): void {
    const complete = progress.done >= progress.total;
    if (this.mode === 'redraw') {
      const time = this.now();
      if (!complete && time - this.lastDraw < REDRAW_MS) return;
      this.lastDraw = time;
      // \r back to the start, ESC [ K erases what a longer previous line left (ECMA-48 §8.3.41, EL).
      this.stream.write(`\r${formatProgress(progress)}\u001b[K`);
      this.drawn = true;
    } else if (this.mode === 'lines') {
      const tenth = tenthDone(progress.done, progress.total);
      if (tenth <= this.lastTenth) return;
      this.lastTenth = tenth;
      this.stream.write(`${formatProgress(progress)}\n`);
    }
  }

  /** Ends the redrawn line, so what follows starts on a line of its own. */
  end(): void {
    if (this.mode === 'redraw' && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
