import { isErrorCode, LatchkeyError } from '@latchkey/core';

/** A minimal JSON-over-HTTP transport; the only place the SDK touches the network. */
export class Transport {
  constructor(
    readonly serverUrl: string,
    private readonly fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis),
  ) {}

  /**
   * Sends one request. Server errors come back as the server's `LatchkeyError`; an unreachable server
   * is `LK_NETWORK`; a reply that is not our protocol is `LK_SERVER_PROTOCOL`.
   */
  async request<T>(
    method: string,
    path: string,
    options: { body?: unknown; token?: Uint8Array | string } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    let response: Response;
    try {
      response = await this.fetchImpl(new URL(path, this.serverUrl), {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      });
    } catch (cause) {
      const reason = networkReason(cause);
      throw new LatchkeyError('LK_NETWORK', `Could not reach ${this.serverUrl} (${reason}).`, { reason });
    }
    const text = await response.text();
    let payload: unknown;
    try {
      payload = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new LatchkeyError('LK_SERVER_PROTOCOL', `HTTP ${response.status} with a body that is not JSON.`);
    }
    if (!response.ok) {
      const { code, message, details } = (payload ?? {}) as { code?: unknown; message?: unknown; details?: unknown };
      if (isErrorCode(code)) {
        throw new LatchkeyError(
          code,
          typeof message === 'string' ? message : undefined,
          details as Record<string, unknown>,
        );
      }
      throw new LatchkeyError('LK_SERVER_PROTOCOL', `HTTP ${response.status} without an error code.`);
    }
    return payload as T;
  }
}

/**
 * Why a fetch failed, in the system's words. Node's fetch says only "fetch failed" and keeps the
 * reason (ECONNREFUSED, ENOTFOUND, ECONNRESET) in its cause.
 */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string' && cause.message !== '') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
