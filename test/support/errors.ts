import { LatchkeyError } from '@latchkey/core';

/** The LatchkeyError a synchronous action throws; fails the test if it throws nothing or something else. */
export function latchkeyErrorOf(action: () => unknown): LatchkeyError {
  try {
    action();
  } catch (error) {
    if (error instanceof LatchkeyError) return error;
    throw error;
  }
  throw new Error('expected a LatchkeyError, but the call succeeded');
}

/** The LatchkeyError a promise rejects with; fails the test if it resolves or rejects with something else. */
export async function asyncLatchkeyErrorOf(promise: Promise<unknown>): Promise<LatchkeyError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof LatchkeyError) return error;
    throw error;
  }
  throw new Error('expected a LatchkeyError, but the call succeeded');
}

/** The `LK_*` code a promise rejects with. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  return (await asyncLatchkeyErrorOf(promise)).code;
}
