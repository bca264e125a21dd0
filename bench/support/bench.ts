/**
 * The contract every `bench/*.bench.ts` module follows: it exports `run(): Promise<BenchRow[]>`, and
 * each row puts our figure next to a named peer (or the physical limit) measured in the same run.
 */
export interface BenchRow {
  /** What was measured, naming the peer it is compared with. */
  name: string;
  ours: number;
  /** The peer's figure in the same unit; `null` for a row that only reports (no comparison). */
  peer: number | null;
  unit: string;
  /** `ours / peer` (or its inverse, as `target` says); `null` when `peer` is. */
  ratio: number | null;
  /** The target on `ratio`, for example `< 1.5`; `null` for an informational row. */
  target: string | null;
  /** Whether `ratio` meets `target`; `null` for an informational row. */
  pass: boolean | null;
}

/** A module under bench/ that {@link ../run.ts} runs. */
export interface BenchModule {
  run(): Promise<BenchRow[]>;
}

/** A row whose ratio `ours / peer` must stay below `max` (a cost compared with a cheaper peer). */
export function costRow(name: string, ours: number, peer: number, unit: string, max: number): BenchRow {
  const ratio = ours / peer;
  return { name, ours, peer, unit, ratio, target: `< ${max}`, pass: ratio < max };
}

/** A row that reports a figure with no peer and no target. */
export function infoRow(name: string, ours: number, unit: string): BenchRow {
  return { name, ours, peer: null, unit, ratio: null, target: null, pass: null };
}

/** CPU time (user + system) this process has used so far, in milliseconds. */
export function processCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Runs `work` on at most `concurrency` items at a time, in order of `items`. */
export async function runPool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
