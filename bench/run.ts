import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchModule, BenchRow } from './support/bench.js';

/**
 * `npm run bench`: runs every `bench/*.bench.ts` in name order and prints one summary table. A missed
 * target is printed as MISS, but the exit code stays 0: benchmarks report, they do not gate. A bench
 * that throws is reported as FAILED and makes the exit code 1. Words after the command pick benches
 * by name: `npm run bench -- login` runs `login.bench.ts` alone.
 */
const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));

interface Outcome {
  file: string;
  rows: BenchRow[];
  error?: unknown;
}

async function runOne(file: string): Promise<Outcome> {
  console.log(`\n== ${file}`);
  try {
    const module = (await import(pathToFileURL(`${BENCH_DIR}${file}`).href)) as BenchModule;
    return { file, rows: await module.run() };
  } catch (error) {
    console.error(`${file} failed:`, error);
    return { file, rows: [], error };
  }
}

function format(value: number | null, digits = 3): string {
  if (value === null) return '-';
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(digits);
}

function verdict(row: BenchRow): string {
  if (row.pass === null) return 'info';
  return row.pass ? 'PASS' : 'MISS';
}

function printTable(outcomes: Outcome[]): void {
  const header = ['bench', 'ours', 'peer', 'unit', 'ratio', 'target', 'result'];
  const lines = outcomes.flatMap((outcome) =>
    outcome.error !== undefined
      ? [[outcome.file, '-', '-', '-', '-', '-', 'FAILED']]
      : outcome.rows.map((row) => [
          row.name,
          format(row.ours),
          format(row.peer),
          row.unit,
          format(row.ratio),
          row.target ?? '-',
          verdict(row),
        ]),
  );
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => line[column]?.length ?? 0)),
  );
  const render = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ');
  console.log(`\n${render(header)}\n${widths.map((width) => '-'.repeat(width)).join('  ')}`);
  for (const line of lines) console.log(render(line));
}

async function main(picked: readonly string[]): Promise<void> {
  const files = readdirSync(BENCH_DIR)
    .filter((name) => name.endsWith('.bench.ts'))
    .filter((name) => picked.length === 0 || picked.some((word) => name.includes(word)))
    .sort();
  if (files.length === 0) throw new Error(`no bench matches ${picked.join(' ')}`);
  const outcomes: Outcome[] = [];
  for (const file of files) outcomes.push(await runOne(file));
  printTable(outcomes);
  const misses = outcomes.flatMap((outcome) => outcome.rows).filter((row) => row.pass === false).length;
  console.log(misses === 0 ? '\nAll targets met.' : `\nMISS: ${misses} target(s) missed (see above).`);
  if (outcomes.some((outcome) => outcome.error !== undefined)) process.exitCode = 1;
}

await main(process.argv.slice(2));
