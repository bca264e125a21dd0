import { readFileSync } from 'node:fs';
import { type ErrorCode, LatchkeyError } from '@latchkey/core';
import { expect } from 'vitest';
import type { VectorFile } from '../vectors/generate.js';

/** Reads a committed vector file from packages/core/vectors (conventions §5: vectors are data). */
export function loadVectors<V>(name: string): VectorFile<V> {
  return JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8')) as VectorFile<V>;
}

/** The text of a committed vector file, byte for byte. */
export function readVectorText(name: string): string {
  return readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8');
}

/** Asserts that `action` throws a LatchkeyError with exactly `code` (conventions §4: the code, not the message). */
export function expectLatchkeyError(action: () => unknown, code: ErrorCode): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(LatchkeyError);
  expect((caught as LatchkeyError).code).toBe(code);
}

/** Keeps the vectors that carry an `error`, typed as such. */
export function mustFailCases<V extends object>(vectors: V[]): Extract<V, { error: string }>[] {
  return vectors.filter((v): v is Extract<V, { error: string }> => 'error' in v);
}

/** Keeps the vectors that do not carry an `error`. */
export function validCases<V extends object>(vectors: V[]): Exclude<V, { error: string }>[] {
  return vectors.filter((v): v is Exclude<V, { error: string }> => !('error' in v));
}
