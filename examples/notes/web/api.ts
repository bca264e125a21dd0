import { isErrorCode, LatchkeyError } from '@latchkey/core';
import type { NotesConfig } from './sign-in.js';

/** The notes backend's API, from the page: the same origin, the Latchkey access token as the bearer. */

async function call(path: string, init: RequestInit = {}): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new LatchkeyError('LK_NETWORK', 'The notes server cannot be reached.');
  }
  const body = (await response.json().catch(() => undefined)) as { code?: unknown; message?: unknown } | undefined;
  if (response.ok && body !== undefined) return body;
  if (isErrorCode(body?.code)) {
    throw new LatchkeyError(body.code, typeof body.message === 'string' ? body.message : undefined);
  }
  throw new LatchkeyError('LK_SERVER_PROTOCOL', `The notes server answered ${response.status}.`);
}

export async function loadConfig(): Promise<NotesConfig> {
  return (await call('/api/config')) as NotesConfig;
}

/** The stored ciphertext, or null when the user has saved nothing yet. */
export async function loadCiphertext(accessToken: string): Promise<string | null> {
  const body = (await call('/api/notes', { headers: { authorization: `Bearer ${accessToken}` } })) as {
    ciphertext: string | null;
  };
  return body.ciphertext;
}

export async function saveCiphertext(accessToken: string, ciphertext: string): Promise<void> {
  await call('/api/notes', {
    method: 'PUT',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ciphertext }),
  });
}
