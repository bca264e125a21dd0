import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliJson, lines } from '../support/cli-process.js';
import { createVerifiedAccount, startTestServer, type TestServer } from '../support/server.js';

const REAUTH_START = '/v1/session/reauth/start';

/**
 * A CLI command that needs the password proves it once: withUnlockedDevice's check opens the keystore
 * and is fresh enough for the delete or overwrite that follows, so the backup must not run OPAQUE (and
 * Argon2id) a second time. Counted from the server's own request log: every `reauth/start` it saw.
 */
describe('one password check per CLI command', () => {
  let server: TestServer;
  const logLines: string[] = [];
  const dirs: string[] = [];
  const email = 'cli-one-reauth@example.com';
  const password = 'cli one reauth password';
  let home: string;

  beforeAll(async () => {
    server = await startTestServer({ logLevel: 'info' }, { logStream: { write: (line) => void logLines.push(line) } });
    await createVerifiedAccount(server, email, password);
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-one-reauth-'));
    dirs.push(dir);
    home = join(dir, 'state');
    await cliJson(['account', 'login', email, '--server', server.url], home, lines(password));
  });
  afterAll(async () => {
    await server.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** How many password checks (`reauth/start` requests) the server saw while `command` ran. */
  async function reauthsDuring(command: () => Promise<unknown>): Promise<number> {
    const before = logLines.length;
    await command();
    return logLines.slice(before).filter((line) => {
      const entry = JSON.parse(line) as { msg?: string; req?: { url?: string } };
      return entry.msg === 'incoming request' && entry.req?.url === REAUTH_START;
    }).length;
  }
  const run = (args: string[]) => () => cliJson([...args, '--password-stdin'], home, lines(password));

  it('enables a first backup with one check', async () => {
    expect(await reauthsDuring(run(['backup', 'enable']))).toBe(1);
  });

  it('replaces the backup with one check', async () => {
    expect(await reauthsDuring(run(['backup', 'enable', '--replace']))).toBe(1);
  });

  it('makes a new recovery key with one check', async () => {
    expect(await reauthsDuring(run(['recovery', 'show-new']))).toBe(1);
  });

  it('deletes the backup with one check', async () => {
    expect(await reauthsDuring(run(['backup', 'delete', '--yes']))).toBe(1);
  });

  it('enables again over the deleted backup’s secret storage with one check', async () => {
    expect(await reauthsDuring(run(['backup', 'enable']))).toBe(1);
  });
});
