import { describe, expect, it } from 'vitest';
import { buildVectorFiles } from '../vectors/generate.js';
import { loadVectors, readVectorText } from './vector-files.js';

/**
 * The committed vector files are exactly what generate.ts computes now, so a change to the model or to
 * the inputs cannot leave stale vectors behind (re-run `npx tsx packages/core/vectors/generate.ts`).
 */
describe('generated vector files', () => {
  const files = Object.entries(buildVectorFiles());

  it('are the three files of issue 2', () => {
    expect(files.map(([name]) => name).sort()).toEqual(['account-keys.json', 'encoding.json', 'envelope.json']);
  });

  it.each(files)('%s is up to date', (name, text) => {
    expect(readVectorText(name)).toBe(text);
  });

  it.each(files)('%s names its source and description', (name) => {
    const file = loadVectors<{ name: string }>(name);
    expect(file.source).toMatch(/node:crypto/);
    expect(file.description.length).toBeGreaterThan(40);
    expect(file.vectors.length).toBeGreaterThan(0);
    expect(new Set(file.vectors.map((v) => v.name)).size).toBe(file.vectors.length);
  });
});
