import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import {
  Browser,
  beginKeyAuthorization,
  encryptKeys,
  grantAndFollow,
  KEY_SCOPE,
  REDIRECT,
  startApp,
  startOauthServer,
} from '../test/support/oauth.js';
import { type BenchRow, runPool } from './support/bench.js';
import { profiled } from './support/cpu-profile.js';

/**
 * Issue 9: token exchanges per second (authorization code + PKCE, keys_jwe relayed beside the access
 * token) through our server (Fastify, middie, our database adapter on SQLite, the keys_jwe relay),
 * against bare oidc-provider with the same public client, PKCE and an in-memory adapter, in the same
 * run and the same process. Codes are made before the clock starts: only their redemption is timed.
 * Target: ours at least 90% of bare.
 */
const CODES = 300;
const ROUNDS = 3;
const CONCURRENCY = 4;
const MIN_RATIO = 0.9;

interface Redeemable {
  tokenEndpoint: string;
  code: string;
  verifier: string;
}

async function redeemAll(codes: readonly Redeemable[]): Promise<number> {
  let failures = 0;
  const started = performance.now();
  await runPool(codes, CONCURRENCY, async ({ tokenEndpoint, code, verifier }) => {
    const response = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: 'notes',
        code,
        redirect_uri: REDIRECT,
        code_verifier: verifier,
      }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (response.status !== 200 || typeof body.access_token !== 'string') {
      if (failures++ === 0) console.error(`token exchange refused: ${response.status} ${JSON.stringify(body)}`);
    }
  });
  const seconds = (performance.now() - started) / 1000;
  if (failures > 0) throw new Error(`${failures} token exchanges failed`);
  return codes.length / seconds;
}

/** Our server: codes with keys_jwe, made through the consent API like the browser would. */
async function ours(): Promise<{ make(count: number): Promise<Redeemable[]>; close(): Promise<void> }> {
  const { server, token } = await startOauthServer('bench');
  const app = await startApp(server.url);
  const keysJwe = await encryptKeys(app.keysJwk, { [KEY_SCOPE]: { kty: 'oct', k: 'a2V5' } });
  return {
    async make(count) {
      const out: Redeemable[] = [];
      for (let i = 0; i < count; i++) {
        const browser = new Browser();
        const uid = await beginKeyAuthorization(browser, server.url, app);
        const callback = await grantAndFollow(browser, { baseUrl: server.url }, uid, token, keysJwe);
        out.push({
          tokenEndpoint: `${server.url}/oauth/token`,
          code: callback.searchParams.get('code') as string,
          verifier: app.codeVerifier,
        });
      }
      return out;
    },
    close: () => server.close(),
  };
}

/** Bare oidc-provider: the same client (public, PKCE, ES256), its default in-memory adapter. */
async function bare(): Promise<{ make(count: number): Promise<Redeemable[]>; close(): Promise<void> }> {
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const provider = new Provider(base, {
    clients: [
      {
        client_id: 'notes',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        id_token_signed_response_alg: 'ES256',
      },
    ],
    scopes: ['openid', 'offline_access', KEY_SCOPE],
    adapter: MapAdapter,
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    jwks: { keys: [await esKey()] as never },
  });
  const callback = provider.callback();
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.startsWith('/interaction/')) return callback(req, res);
    void (async () => {
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId: 'bench', clientId: 'notes' });
      grant.addOIDCScope(String(details.params.scope));
      const redirectTo = await provider.interactionResult(req, res, {
        login: { accountId: 'bench' },
        consent: { grantId: await grant.save() },
      });
      res.writeHead(303, { location: redirectTo }).end();
    })();
  });
  const verifier = 'bench-verifier-bench-verifier-bench-verifier-0123456789';
  const challenge = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))).toString(
    'base64url',
  );
  return {
    async make(count) {
      const out: Redeemable[] = [];
      for (let i = 0; i < count; i++) {
        const browser = new Browser();
        const url = new URL(`${base}/auth`);
        for (const [k, v] of Object.entries({
          client_id: 'notes',
          redirect_uri: REDIRECT,
          response_type: 'code',
          scope: `openid ${KEY_SCOPE}`,
          code_challenge: challenge,
          code_challenge_method: 'S256',
        })) {
          url.searchParams.set(k, v);
        }
        let next = new URL(url);
        for (let hop = 0; hop < 5 && next.origin === base; hop++) {
          const response = await browser.fetch(next.href);
          next = new URL(response.headers.get('location') as string, next);
        }
        out.push({ tokenEndpoint: `${base}/token`, code: next.searchParams.get('code') as string, verifier });
      }
      return out;
    },
    close: () => new Promise<void>((resolve) => http.close(() => resolve())),
  };
}

/**
 * An in-memory adapter for the bare peer: oidc-provider's own is an LRU cache that evicts codes once a
 * few hundred flows have run, which would fail the peer's exchanges rather than time them.
 */
class MapAdapter {
  private static readonly rows = new Map<string, Record<string, unknown>>();

  constructor(private readonly model: string) {}

  private key(id: string) {
    return `${this.model}:${id}`;
  }

  async upsert(id: string, payload: Record<string, unknown>) {
    MapAdapter.rows.set(this.key(id), payload);
    if (typeof payload.uid === 'string') MapAdapter.rows.set(`${this.model}:uid:${payload.uid}`, payload);
  }

  async find(id: string) {
    return MapAdapter.rows.get(this.key(id));
  }

  async findByUid(uid: string) {
    return MapAdapter.rows.get(`${this.model}:uid:${uid}`);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id: string) {
    const payload = MapAdapter.rows.get(this.key(id));
    if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string) {
    MapAdapter.rows.delete(this.key(id));
  }

  async revokeByGrantId(grantId: string) {
    for (const [key, payload] of MapAdapter.rows) if (payload.grantId === grantId) MapAdapter.rows.delete(key);
  }
}

async function esKey() {
  const { exportJWK, generateKeyPair } = await import('jose');
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig' };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

export async function run(): Promise<BenchRow[]> {
  const ourSide = await ours();
  const bareSide = await bare();
  try {
    // Warm both up, then alternate rounds so a noisy neighbour hits both alike.
    await redeemAll(await ourSide.make(50));
    await redeemAll(await bareSide.make(50));
    const oursRates: number[] = [];
    const bareRates: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const oursCodes = await ourSide.make(CODES);
      oursRates.push(await profiled(`oauth-token-ours-${round + 1}`, () => redeemAll(oursCodes)));
      const bareCodes = await bareSide.make(CODES);
      bareRates.push(await profiled(`oauth-token-bare-${round + 1}`, () => redeemAll(bareCodes)));
      console.log(`round ${round + 1}: ours ${oursRates.at(-1)?.toFixed(0)}/s, bare ${bareRates.at(-1)?.toFixed(0)}/s`);
    }
    const o = median(oursRates);
    const p = median(bareRates);
    const ratio = o / p;
    return [
      {
        name: 'oauth token exchanges with keys_jwe vs bare oidc-provider (in-memory)',
        ours: o,
        peer: p,
        unit: 'exchanges/s',
        ratio,
        target: `>= ${MIN_RATIO}`,
        pass: ratio >= MIN_RATIO,
      },
    ];
  } finally {
    await ourSide.close();
    await bareSide.close();
  }
}
