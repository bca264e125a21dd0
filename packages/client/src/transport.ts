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
      throw this.unreachable(cause);
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

  /**
   * `LK_NETWORK` for a fetch that failed. A browser refusing a cross-origin answer (CORS) fails the
   * same way as a server that is down, with no more said to the page, so from a page on another origin
   * the error names that origin and the server setting that lets it in.
   */
  private unreachable(cause: unknown): LatchkeyError {
    const reason = networkReason(cause);
    const pageOrigin = crossPageOrigin(this.serverUrl);
    if (pageOrigin === undefined) {
      return new LatchkeyError('LK_NETWORK', `Could not reach ${this.serverUrl} (${reason}).`, { reason });
    }
    return new LatchkeyError(
      'LK_NETWORK',
      `Could not reach ${this.serverUrl} (${reason}). The server may be down, or it may not allow this page's ` +
        `origin ${pageOrigin}: its operator lists allowed origins in LATCHKEY_CORS_ORIGINS (CORS).`,
      { reason, pageOrigin },
    );
  }
}

/** The page's origin when the SDK runs in a web page on an origin other than the server's. */
function crossPageOrigin(serverUrl: string): string | undefined {
  const origin = (globalThis as { location?: { origin?: unknown } }).location?.origin;
  if (typeof origin !== 'string' || origin === 'null' || !URL.canParse(serverUrl)) return undefined;
  return new URL(serverUrl).origin === origin ? undefined : origin;
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
