import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseKeyStretching as coreParseKeyStretching } from '@latchkey/core';
import { afterAll, describe, expect, it } from 'vitest';
import { latchkeyErrorOf } from '../../../test/support/errors.js';
import {
  DEFAULTS,
  loadConfig,
  parseCorsOrigins,
  parsePort,
  parseTrustProxy,
  type ServerConfig,
} from '../src/config.js';
import { loadOrCreateMasterKey } from '../src/master-key.js';

/** Every variable loadConfig reads, so a test can show that none of them is left out. */
const VARIABLES = [
  'LATCHKEY_HOST',
  'LATCHKEY_PORT',
  'LATCHKEY_DB',
  'LATCHKEY_MASTER_KEY_FILE',
  'LATCHKEY_WEB_DIR',
  'LATCHKEY_SMTP_URL',
  'LATCHKEY_MAIL_FROM',
  'LATCHKEY_KEY_STRETCHING',
  'LATCHKEY_LOG_LEVEL',
  'LATCHKEY_TRUST_PROXY',
  'LATCHKEY_CORS_ORIGINS',
] as const;

describe('loadConfig', () => {
  it('is the safe defaults with no LATCHKEY_* variable: loopback, SQLite under ./data, mail to the log, no proxy', () => {
    const config = loadConfig({ PORT: '80', HOST: '0.0.0.0', DATABASE_URL: 'postgres://elsewhere/db' });
    expect(config).toEqual(DEFAULTS);
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8470,
      databaseUrl: 'sqlite:./data/latchkey.db',
      masterKeyFile: './data/master.key',
      webDir: undefined,
      smtpUrl: undefined,
      keyStretching: 'memory-constrained',
      logLevel: 'info',
      trustProxy: false,
      corsOrigins: [],
    });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig(Object.fromEntries(VARIABLES.map((name) => [name, ''])))).toEqual(DEFAULTS);
  });

  const parsed: Array<[(typeof VARIABLES)[number], string, Partial<ServerConfig>]> = [
    ['LATCHKEY_HOST', '0.0.0.0', { host: '0.0.0.0' }],
    ['LATCHKEY_HOST', '::', { host: '::' }],
    ['LATCHKEY_HOST', 'latchkey.internal', { host: 'latchkey.internal' }],
    ['LATCHKEY_PORT', '9000', { port: 9000 }],
    ['LATCHKEY_PORT', '0', { port: 0 }],
    ['LATCHKEY_DB', 'sqlite:/var/lib/latchkey/db.sqlite', { databaseUrl: 'sqlite:/var/lib/latchkey/db.sqlite' }],
    ['LATCHKEY_DB', 'postgres://lk:pw@db:5432/latchkey', { databaseUrl: 'postgres://lk:pw@db:5432/latchkey' }],
    ['LATCHKEY_DB', 'postgresql://db/latchkey', { databaseUrl: 'postgresql://db/latchkey' }],
    ['LATCHKEY_MASTER_KEY_FILE', '/etc/latchkey/master.key', { masterKeyFile: '/etc/latchkey/master.key' }],
    ['LATCHKEY_WEB_DIR', '/srv/latchkey-web', { webDir: '/srv/latchkey-web' }],
    ['LATCHKEY_SMTP_URL', 'smtp://user:pass@mail:587', { smtpUrl: 'smtp://user:pass@mail:587' }],
    ['LATCHKEY_SMTP_URL', 'smtps://mail.example.com', { smtpUrl: 'smtps://mail.example.com' }],
    ['LATCHKEY_MAIL_FROM', 'Keys <keys@example.com>', { mailFrom: 'Keys <keys@example.com>' }],
    ['LATCHKEY_KEY_STRETCHING', 'rfc-recommended', { keyStretching: 'rfc-recommended' }],
    [
      'LATCHKEY_KEY_STRETCHING',
      'argon2id:m=65536,t=3,p=4',
      { keyStretching: { 'argon2id-custom': { memory: 65536, iterations: 3, parallelism: 4 } } },
    ],
    ['LATCHKEY_LOG_LEVEL', 'silent', { logLevel: 'silent' }],
    ['LATCHKEY_LOG_LEVEL', 'trace', { logLevel: 'trace' }],
    ['LATCHKEY_TRUST_PROXY', 'false', { trustProxy: false }],
    ['LATCHKEY_TRUST_PROXY', '127.0.0.1', { trustProxy: ['127.0.0.1'] }],
    [
      'LATCHKEY_TRUST_PROXY',
      '10.0.0.5, 172.16.0.0/12,fd00::/8 ,::1,loopback',
      { trustProxy: ['10.0.0.5', '172.16.0.0/12', 'fd00::/8', '::1', 'loopback'] },
    ],
    ['LATCHKEY_CORS_ORIGINS', 'https://app.example', { corsOrigins: ['https://app.example'] }],
    [
      'LATCHKEY_CORS_ORIGINS',
      'https://app.example, http://127.0.0.1:5173,http://[::1]:8080',
      { corsOrigins: ['https://app.example', 'http://127.0.0.1:5173', 'http://[::1]:8080'] },
    ],
  ];
  it.each(parsed)('reads %s=%j', (name, text, expected) => {
    expect(loadConfig({ [name]: text })).toEqual({ ...DEFAULTS, ...expected });
  });

  it('has a case above for every variable', () => {
    expect(new Set(parsed.map(([name]) => name))).toEqual(new Set(VARIABLES));
  });

  const refused: Array<[(typeof VARIABLES)[number], string]> = [
    ['LATCHKEY_HOST', 'not a host'],
    ['LATCHKEY_HOST', 'http://example.com'],
    ['LATCHKEY_PORT', 'eighty'],
    ['LATCHKEY_PORT', '65536'],
    ['LATCHKEY_PORT', '-1'],
    ['LATCHKEY_PORT', '80.5'],
    ['LATCHKEY_PORT', '0x50'],
    ['LATCHKEY_PORT', '1e3'],
    ['LATCHKEY_PORT', ' 80'],
    ['LATCHKEY_DB', 'mysql://root:hunter2@db/latchkey'],
    ['LATCHKEY_DB', './data/latchkey.db'],
    ['LATCHKEY_DB', 'sqlite:'],
    ['LATCHKEY_DB', 'postgres://[bad'],
    ['LATCHKEY_SMTP_URL', 'http://user:hunter2@mail'],
    ['LATCHKEY_SMTP_URL', 'mail.example.com:25'],
    ['LATCHKEY_SMTP_URL', 'smtp://'],
    ['LATCHKEY_MAIL_FROM', 'no-reply'],
    ['LATCHKEY_MAIL_FROM', 'a@example.com\r\nBcc: everyone@example.com'],
    ['LATCHKEY_KEY_STRETCHING', 'scrypt'],
    ['LATCHKEY_KEY_STRETCHING', 'argon2id:m=7,t=1,p=1'],
    ['LATCHKEY_KEY_STRETCHING', 'argon2id:m=1024,t=0,p=1'],
    ['LATCHKEY_KEY_STRETCHING', 'argon2id:m=1024,t=1,p=0'],
    ['LATCHKEY_KEY_STRETCHING', 'argon2id:m=9999999999,t=1,p=1'],
    ['LATCHKEY_LOG_LEVEL', 'verbose'],
    ['LATCHKEY_LOG_LEVEL', 'INFO'],
    ['LATCHKEY_TRUST_PROXY', 'true'],
    ['LATCHKEY_TRUST_PROXY', '1'],
    ['LATCHKEY_TRUST_PROXY', 'proxy.example.com'],
    ['LATCHKEY_CORS_ORIGINS', '*'],
    ['LATCHKEY_CORS_ORIGINS', 'https://app.example/callback'],
    ['LATCHKEY_CORS_ORIGINS', 'https://user:hunter2@app.example'],
  ];
  it.each(refused)('refuses %s=%j with LK_CONFIG_INVALID naming the variable', (name, text) => {
    const error = latchkeyErrorOf(() => loadConfig({ [name]: text }));
    expect(error.code).toBe('LK_CONFIG_INVALID');
    expect(error.details).toMatchObject({ setting: name });
    expect(error.message.startsWith(`${name}: `)).toBe(true);
    // URLs carry passwords: an error message (which reaches the log) must not repeat them.
    expect(error.message).not.toContain('hunter2');
  });

  it('has a refused case above for every variable that can be wrong', () => {
    const free = ['LATCHKEY_MASTER_KEY_FILE', 'LATCHKEY_WEB_DIR'];
    expect(new Set(refused.map(([name]) => name))).toEqual(new Set(VARIABLES.filter((name) => !free.includes(name))));
  });

  it('lets explicit options (the CLI flags) win over the environment', () => {
    const env = { LATCHKEY_PORT: '9000', LATCHKEY_HOST: '0.0.0.0', LATCHKEY_TRUST_PROXY: '10.0.0.1' };
    const config = loadConfig(env, { port: 9001, trustProxy: false });
    expect(config).toMatchObject({ port: 9001, host: '0.0.0.0', trustProxy: false });
  });
});

describe('parseTrustProxy', () => {
  it.each([
    ['10.0.0.0/8', ['10.0.0.0/8']],
    ['0.0.0.0/0', ['0.0.0.0/0']],
    ['::/0,2001:db8::1/128', ['::/0', '2001:db8::1/128']],
    ['linklocal,uniquelocal', ['linklocal', 'uniquelocal']],
  ])('reads %j', (text, expected) => {
    expect(parseTrustProxy(text)).toEqual(expected);
  });

  it.each([
    'true',
    '0',
    '2',
    'TRUE',
    'off',
    ',',
    '127.0.0.1,',
    '10.0.0.0/33',
    '::/129',
    '10.0.0.0/',
    '10.0.0.0/-1',
    '10.0.0.0/8/8',
    '10.0.0.0/255.0.0.0',
    '10.0.0',
    '010.0.0.1',
    'fe80::1%eth0',
    'localhost',
  ])('refuses %j with LK_CONFIG_INVALID', (text) => {
    expect(latchkeyErrorOf(() => parseTrustProxy(text)).code).toBe('LK_CONFIG_INVALID');
  });
});

describe('parseCorsOrigins', () => {
  it('reads origins exactly as a browser sends them in Origin, once each', () => {
    expect(parseCorsOrigins('https://a.example:8443,https://b.example, https://a.example:8443')).toEqual([
      'https://a.example:8443',
      'https://b.example',
    ]);
  });

  it.each([
    ['*', /every web page/],
    ['null', /scheme:\/\/host/],
    ['', /scheme:\/\/host/],
    ['https://a.example,', /scheme:\/\/host/],
    ['app.example', /scheme:\/\/host/],
    ['ftp://app.example', /http or https/],
    ['file:///srv/app', /http or https/],
    ['chrome-extension://abcdef', /http or https/],
    ['https://app.example/', /did you mean https:\/\/app\.example\?/],
    ['https://app.example/path', /did you mean https:\/\/app\.example\?/],
    ['https://app.example?x=1', /did you mean https:\/\/app\.example\?/],
    ['https://app.example#top', /did you mean https:\/\/app\.example\?/],
    ['https://APP.example', /did you mean https:\/\/app\.example\?/],
    ['https://app.example:443', /did you mean https:\/\/app\.example\?/],
    ['http://app.example:80', /did you mean http:\/\/app\.example\?/],
    ['https://user:hunter2@app.example', /no user name or password/],
  ])('refuses %j with LK_CONFIG_INVALID saying why', (text, why) => {
    const error = latchkeyErrorOf(() => parseCorsOrigins(text));
    expect(error.code).toBe('LK_CONFIG_INVALID');
    expect(error.message).toMatch(why);
    expect(error.message).not.toContain('hunter2');
  });
});

describe('parsePort (also used for flags)', () => {
  it('accepts what loadConfig accepts and refuses the rest with LK_CONFIG_INVALID', () => {
    expect(parsePort('65535')).toBe(65535);
    expect(latchkeyErrorOf(() => parsePort('')).code).toBe('LK_CONFIG_INVALID');
  });
});

describe('LATCHKEY_KEY_STRETCHING', () => {
  const stretching = (text: string) => loadConfig({ LATCHKEY_KEY_STRETCHING: text }).keyStretching;

  it("is read by core's parseKeyStretching, the one the SDK, CLI and web app pin with", () => {
    for (const text of ['memory-constrained', 'argon2id:m=32,t=1,p=4', 'argon2id:m=4294967295,t=1,p=16777215']) {
      expect(stretching(text)).toEqual(coreParseKeyStretching(text));
    }
  });

  it.each(['argon2id:m=31,t=1,p=4', 'argon2id:m=4294967296,t=1,p=1', 'argon2id:m=65536,t=0,p=1', 'scrypt'])(
    "refuses %j with LK_CONFIG_INVALID naming the setting, and core's LK_KDF_INVALID as its cause",
    (text) => {
      const error = latchkeyErrorOf(() => stretching(text));
      expect(error.code).toBe('LK_CONFIG_INVALID');
      expect(error.details).toEqual({ setting: 'LATCHKEY_KEY_STRETCHING', cause: 'LK_KDF_INVALID' });
      expect(latchkeyErrorOf(() => coreParseKeyStretching(text)).code).toBe('LK_KDF_INVALID');
    },
  );
});

describe('the master key file', () => {
  const dirs: string[] = [];
  const newDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-master-key-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const modeOf = (path: string) => statSync(path).mode & 0o777;

  it('is created on first start as 32 random bytes, mode 0600, and read back the same after', () => {
    const path = join(newDir(), 'nested', 'master.key');
    const key = loadOrCreateMasterKey(path);
    expect(key.length).toBe(32);
    expect(modeOf(path)).toBe(0o600);
    expect(new Uint8Array(readFileSync(path))).toEqual(key);
    expect(loadOrCreateMasterKey(path)).toEqual(key);
  });

  it.each(['644', '640', '604', '660', '666'])(
    'is tightened to 0600 when made 0%s by hand, keeping its bytes',
    (octal) => {
      const mode = Number.parseInt(octal, 8);
      const path = join(newDir(), 'master.key');
      const bytes = new Uint8Array(32).map((_, i) => i + 1);
      writeFileSync(path, bytes);
      chmodSync(path, mode);
      expect(modeOf(path)).toBe(mode);
      const key = loadOrCreateMasterKey(path);
      expect(modeOf(path)).toBe(0o600);
      expect(key).toEqual(bytes);
    },
  );

  it.each([0, 16, 31, 33, 64])(
    'is refused with LK_CONFIG_INVALID when it holds %i bytes, and left as it was',
    (length) => {
      const path = join(newDir(), 'master.key');
      const bytes = new Uint8Array(length).fill(7);
      writeFileSync(path, bytes, { mode: 0o600 });
      const error = latchkeyErrorOf(() => loadOrCreateMasterKey(path));
      expect(error.code).toBe('LK_CONFIG_INVALID');
      expect(error.details).toEqual({ file: path });
      expect(new Uint8Array(readFileSync(path))).toEqual(bytes);
    },
  );
});
