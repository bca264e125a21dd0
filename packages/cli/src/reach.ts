import { LatchkeyError } from '@latchkey/core';

/** How long the check waits for an answer: a server that is up answers /health at once. */
const CHECK_TIMEOUT_MS = 10_000;

/**
 * Checks that `server` is up and is a Latchkey server (its `GET /health`), so a command that is
 * going to ask for a password finds out first, instead of after the person has typed it. A server
 * that cannot be reached is `LK_NETWORK` naming the URL; one that answers but is not ours is
 * `LK_SERVER_PROTOCOL`.
 */
export async function checkServer(server: string): Promise<void> {
  const url = new URL('/health', `${server}/`);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
  } catch (error) {
    const reason = failureReason(error);
    throw new LatchkeyError(
      'LK_NETWORK',
      `Cannot reach the Latchkey server at ${server} (${reason}). Is it running? Start one with ` +
        '`latchkey serve`, or name another with --server URL or LATCHKEY_SERVER.',
      { server, reason },
    );
  }
  const body = (await response.json().catch(() => undefined)) as { status?: unknown } | undefined;
  if (!response.ok || body?.status !== 'ok') {
    throw new LatchkeyError(
      'LK_SERVER_PROTOCOL',
      `${server} answered GET /health with HTTP ${response.status}, not as a Latchkey server does; check --server.`,
      { server, status: response.status },
    );
  }
}

/** Why a fetch failed, in the system's words: ECONNREFUSED, ENOTFOUND, or a timeout. */
function failureReason(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${CHECK_TIMEOUT_MS / 1000} s`;
  }
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string' && cause.message !== '') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
