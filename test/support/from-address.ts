import { request } from 'node:http';

/**
 * A `fetch` whose connections leave from `localAddress`. On Linux every address of 127.0.0.0/8 is
 * loopback, so a test can be a thousand different clients without a proxy or X-Forwarded-For: the
 * server sees each as its socket's peer address, the path a real client takes. One connection per
 * request (no keep-alive), so no request is sent from another address's socket.
 */
export function fetchFrom(localAddress: string): typeof fetch {
  return (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const body = init.body ?? undefined;
    if (body !== undefined && body !== null && typeof body !== 'string') {
      throw new TypeError('fetchFrom sends string bodies only');
    }
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    if (typeof body === 'string') headers['content-length'] = String(Buffer.byteLength(body));
    return new Promise<Response>((resolve, reject) => {
      const outgoing = request(
        url,
        { method: init.method ?? 'GET', headers, localAddress, agent: false },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('error', reject);
          incoming.on('end', () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(incoming.headers)) {
              if (typeof value === 'string') responseHeaders.set(name, value);
            }
            resolve(
              new Response(Buffer.concat(chunks), { status: incoming.statusCode ?? 0, headers: responseHeaders }),
            );
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.end(typeof body === 'string' ? body : undefined);
    });
  };
}

/** A raw JSON POST from `localAddress`: the status and the parsed answer, whatever they are. */
export async function postFrom(localAddress: string, serverUrl: string, path: string, body: unknown) {
  const response = await fetchFrom(localAddress)(new URL(path, serverUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The `n`-th address (from 1) of the loopback block `127.<block>.0.0/16`, one per simulated client. */
export function loopbackAddress(block: number, n: number): string {
  if (block < 1 || block > 255 || n < 1 || n > 65_534)
    throw new RangeError('outside 127.<1-255>.0.1-127.<block>.255.254');
  return `127.${block}.${n >> 8}.${n & 255}`;
}
