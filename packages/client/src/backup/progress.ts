/** Progress of a long key operation, for a bar: keys done of total, the rate, and the time left. */
export interface KeyProgress<Phase extends string> {
  phase: Phase;
  done: number;
  total: number;
  keysPerSecond: number;
  secondsLeft: number;
}

/**
 * A reporter for one phase: call it with keys done of total; it tells `listener` (if any) with the
 * rate so far and the time left at that rate.
 */
export function progressMeter<Phase extends string>(
  phase: Phase,
  listener: ((progress: KeyProgress<Phase>) => void) | undefined,
): (done: number, total: number) => void {
  const started = performance.now();
  return (done, total) => {
    if (listener === undefined) return;
    const seconds = (performance.now() - started) / 1000;
    const keysPerSecond = seconds > 0 ? done / seconds : 0;
    listener({
      phase,
      done,
      total,
      keysPerSecond,
      secondsLeft: keysPerSecond > 0 ? (total - done) / keysPerSecond : 0,
    });
  };
}
