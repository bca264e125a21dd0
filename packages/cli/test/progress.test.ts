import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  formatCount,
  formatDuration,
  formatProgress,
  ProgressDisplay,
  type ProgressMode,
  progressMode,
  tenthDone,
} from '../src/progress.js';

describe('formatProgress', () => {
  it('draws the bar, the counts, the rate and the time left', () => {
    expect(formatProgress({ done: 5000, total: 10_000, keysPerSecond: 8200, secondsLeft: 0.6 })).toBe(
      '[#####.....] 5,000/10,000 keys · 8,200 keys/s · 1s left',
    );
    expect(formatProgress({ done: 1234, total: 1_000_000, keysPerSecond: 99.6, secondsLeft: 10_028 })).toBe(
      '[..........] 1,234/1,000,000 keys · 100 keys/s · 2h 47m left',
    );
  });

  it('says done at the end, and leaves out a rate it does not have yet', () => {
    expect(formatProgress({ done: 300, total: 300, keysPerSecond: 1500.4, secondsLeft: 0 })).toBe(
      '[##########] 300/300 keys · 1,500 keys/s · done',
    );
    expect(formatProgress({ done: 0, total: 300, keysPerSecond: 0, secondsLeft: 0 })).toBe('[..........] 0/300 keys');
    expect(formatProgress({ done: 0, total: 0, keysPerSecond: 0, secondsLeft: 0 })).toBe(
      '[##########] 0/0 keys · done',
    );
  });

  it('never overflows the bar and takes another width', () => {
    expect(formatProgress({ done: 12, total: 10, keysPerSecond: 0, secondsLeft: 0 }, 4)).toBe(
      '[####] 12/10 keys · done',
    );
    expect(formatProgress({ done: 1, total: 3, keysPerSecond: 0, secondsLeft: 0 }, 20)).toBe(
      '[######..............] 1/3 keys',
    );
  });
});

describe('number and time formats', () => {
  it('groups thousands whatever the locale', () => {
    expect([0, 7, 999, 1000, 12_345, 1_234_567, 999.6].map(formatCount)).toEqual([
      '0',
      '7',
      '999',
      '1,000',
      '12,345',
      '1,234,567',
      '1,000',
    ]);
  });

  it('rounds time left up to whole seconds, then minutes and hours', () => {
    expect([0, 0.2, 1, 59.1, 60, 61, 3599, 3600, 3661, 86_400].map(formatDuration)).toEqual([
      '1s',
      '1s',
      '1s',
      '1m 00s',
      '1m 00s',
      '1m 01s',
      '59m 59s',
      '1h 00m',
      '1h 01m',
      '24h 00m',
    ]);
  });

  it('counts tenths done, an empty job being complete', () => {
    expect([0, 99, 100, 999, 1000].map((done) => tenthDone(done, 1000))).toEqual([0, 0, 1, 9, 10]);
    expect(tenthDone(0, 0)).toBe(10);
    expect(tenthDone(5, 3)).toBe(10);
  });
});

describe('ProgressDisplay', () => {
  const snapshot = (done: number, total: number) => ({ done, total, keysPerSecond: 100, secondsLeft: 1 });

  function display(mode: ProgressMode, now: () => number = () => 0) {
    let written = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written += chunk.toString('utf8');
        done();
      },
    });
    return { bar: new ProgressDisplay(stream, mode, now), written: () => written };
  }

  it('picks its mode: silent under --json, redrawn on a terminal, lines otherwise', () => {
    expect(progressMode({ json: true, tty: true })).toBe('silent');
    expect(progressMode({ json: true, tty: false })).toBe('silent');
    expect(progressMode({ json: false, tty: true })).toBe('redraw');
    expect(progressMode({ json: false, tty: false })).toBe('lines');
  });

  it('writes one line per tenth when not on a terminal, and the end once', () => {
    const { bar, written } = display('lines');
    for (let done = 0; done <= 1000; done += 50) bar.update(snapshot(done, 1000));
    bar.update(snapshot(1000, 1000));
    bar.end();
    const lines = written().trimEnd().split('\n');
    expect(lines).toHaveLength(10);
    expect(lines[0]).toMatch(/^\[#\.{9}\] 100\/1,000 keys/);
    expect(lines.at(-1)).toMatch(/^\[#{10}\] 1,000\/1,000 keys · 100 keys\/s · done$/);
  });

  it('writes a single line for a job done in one step', () => {
    const { bar, written } = display('lines');
    bar.update(snapshot(300, 300));
    bar.end();
    expect(written()).toBe('[##########] 300/300 keys · 100 keys/s · done\n');
  });

  it('redraws one line in place on a terminal, at most every 100 ms but always the end', () => {
    let time = 0;
    const { bar, written } = display('redraw', () => time);
    bar.update(snapshot(100, 1000));
    time = 50;
    bar.update(snapshot(200, 1000)); // too soon: skipped
    time = 150;
    bar.update(snapshot(300, 1000));
    time = 160;
    bar.update(snapshot(1000, 1000)); // the end is never skipped
    bar.end();
    const out = written();
    expect(out.split('\r')).toHaveLength(4);
    expect(out).not.toContain('200/1,000');
    expect(out).toContain('\r[###.......] 300/1,000 keys · 100 keys/s · 1s left\u001b[K');
    expect(out.endsWith('done\u001b[K\n')).toBe(true);
    expect(out.slice(0, -1)).not.toContain('\n');
  });

  it('writes nothing under --json, and no newline when nothing was drawn', () => {
    const silent = display('silent');
    silent.bar.update(snapshot(500, 1000));
    silent.bar.update(snapshot(1000, 1000));
    silent.bar.end();
    expect(silent.written()).toBe('');
    const idle = display('redraw');
    idle.bar.end();
    expect(idle.written()).toBe('');
  });
});
