import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { deriveFxaScopedKey, fromHex, type ScopedKeyJwk, toBase64Url, utf8 } from '@latchkey/core';
import type { Browser, Page } from 'playwright-core';
import { build, type Rollup } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './harness.js';

/**
 * The scoped-key modules of core in real Chromium, as the consent page and a relier's page will run
 * them: bundled alone by Vite for the browser, served from 127.0.0.1 (a secure context, so WebCrypto
 * is there). The page derives the FxA vectors, encrypts keys_jwe to a key pair made by Mozilla's
 * fxa-crypto-relier in Node, which decrypts it; and decrypts the spec's keys_jwe.
 */
const require = createRequire(import.meta.url);
const relier = require('fxa-crypto-relier/src/relier') as {
  KeyUtils: new () => {
    createApplicationKeyPair(): Promise<{ jwkPublicKey: Record<string, string> }>;
    decryptBundle(keysJwe: string): Promise<Record<string, ScopedKeyJwk>>;
  };
};
const vectors = JSON.parse(
  readFileSync(new URL('../../packages/core/vectors/fxa-scoped-keys.json', import.meta.url), 'utf8'),
);

interface VectorRow {
  identifier: string;
  uidHex: string;
  inputKeyHex: string;
  keyRotationSecretHex: string;
  keyRotationTimestamp: number;
  k: string;
  kid: string;
}
const rows = vectors.scopedKeys as VectorRow[];

let bundle: string;
let server: Server;
let browser: Browser;
let page: Page;

async function bundleForBrowser(): Promise<string> {
  const output = (await build({
    configFile: false,
    logLevel: 'warn',
    build: {
      write: false,
      minify: false,
      lib: {
        entry: fileURLToPath(new URL('./scoped-keys-entry.ts', import.meta.url)),
        formats: ['iife'],
        name: 'ScopedKeys',
        fileName: 'scoped-keys',
      },
    },
  })) as Rollup.RollupOutput[];
  const chunk = output[0]?.output[0];
  if (chunk === undefined || chunk.type !== 'chunk') throw new Error('vite made no bundle');
  return chunk.code;
}

beforeAll(async () => {
  bundle = await bundleForBrowser();
  server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>scoped keys</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  browser = await launchChromium();
  page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.addScriptTag({ content: bundle });
  expect(errors).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('scoped keys in Chromium', () => {
  it('the bundle pulls in no Node built-in', () => {
    expect(bundle).not.toMatch(/node:|require\(/);
    expect(bundle.length).toBeGreaterThan(1000);
  });

  it('derives every FxA vector in the page', async () => {
    const derived = await page.evaluate((rows) => {
      const { deriveFxaScopedKey: derive, fromHex: hex } = (globalThis as never as { ScopedKeys: never })
        .ScopedKeys as typeof import('./scoped-keys-entry.js');
      return rows.map((v) =>
        derive({
          inputKey: hex(v.inputKeyHex),
          uid: hex(v.uidHex),
          identifier: v.identifier,
          keyRotationSecret: hex(v.keyRotationSecretHex),
          keyRotationTimestamp: v.keyRotationTimestamp,
        }),
      );
    }, rows);
    expect(derived).toEqual(rows.map((v) => ({ kty: 'oct', scope: v.identifier, k: v.k, kid: v.kid })));
  });

  it('encrypts keys_jwe in the page that fxa-crypto-relier decrypts in Node', async () => {
    const keyUtils = new relier.KeyUtils();
    const { jwkPublicKey } = await keyUtils.createApplicationKeyPair();
    const keysJwk = toBase64Url(utf8(JSON.stringify(jwkPublicKey)));
    const e2e = vectors.endToEnd;
    const input = {
      uidHex: e2e.uidHex,
      kBHex: e2e.kBHex,
      secretHex: e2e.keyRotationSecretHex,
      timestamp: e2e.keyRotationTimestamp,
      identifiers: ['https://identity.mozilla.com/apps/oldsync', e2e.identifier],
    };
    const jwe = await page.evaluate(
      async ({ keysJwk, input }) => {
        const core = (globalThis as never as { ScopedKeys: never })
          .ScopedKeys as typeof import('./scoped-keys-entry.js');
        const keys = input.identifiers.map((identifier) =>
          core.deriveFxaScopedKey({
            inputKey: core.fromHex(input.kBHex),
            uid: core.fromHex(input.uidHex),
            identifier,
            keyRotationSecret: core.fromHex(input.secretHex),
            keyRotationTimestamp: input.timestamp,
          }),
        );
        return core.encryptScopedKeys(keysJwk, keys);
      },
      { keysJwk, input },
    );
    const expected = input.identifiers.map((identifier) =>
      deriveFxaScopedKey({
        inputKey: fromHex(input.kBHex),
        uid: fromHex(input.uidHex),
        identifier,
        keyRotationSecret: fromHex(input.secretHex),
        keyRotationTimestamp: input.timestamp,
      }),
    );
    expect(await keyUtils.decryptBundle(jwe)).toEqual(Object.fromEntries(expected.map((key) => [key.scope, key])));
  });

  it("opens the spec's keys_jwe in the page, and refuses a bad keys_jwk there with its code", async () => {
    const e2e = vectors.endToEnd;
    const result = await page.evaluate(
      async ({ jwe, privateJwk, badJwk }) => {
        const core = (globalThis as never as { ScopedKeys: never })
          .ScopedKeys as typeof import('./scoped-keys-entry.js');
        const plaintext = core.fromUtf8(await core.openKeysJwe(jwe, privateJwk));
        let code = 'none';
        try {
          core.parseKeysJwk(badJwk);
        } catch (error) {
          code = (error as { code: string }).code;
        }
        const pair = await core.createKeysJwkPair();
        return { plaintext, code, extractable: pair.privateKey.extractable };
      },
      { jwe: e2e.keysJwe, privateJwk: e2e.relierPrivateJwk, badJwk: vectors.keysJwk.mustFail[0].keysJwk },
    );
    expect(result).toEqual({ plaintext: e2e.keysBundle, code: 'LK_KEYS_JWK_PRIVATE', extractable: false });
  });
});
