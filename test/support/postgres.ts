import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/** Where Debian/Ubuntu put each installed major version (`/usr/lib/postgresql/<major>/bin`). */
const DEBIAN_ROOT = '/usr/lib/postgresql';
/** PostgreSQL refuses to run as root, so as root we hand the cluster to this system user. */
const CLUSTER_USER = 'postgres';
/** Upper bound for initdb, start and stop; each is a second or two on a healthy machine. */
const STEP_TIMEOUT_MS = 60_000;
/** A free port can be taken by someone else between our probe and postgres binding it. */
const PORT_ATTEMPTS = 3;

/** A throwaway PostgreSQL cluster on 127.0.0.1, owned by the test run. */
export interface PostgresCluster {
  /** Superuser URL of the `postgres` database, with a random password (SCRAM over TCP). */
  url: string;
  /** The cluster's data directory, for tests that search the stored bytes. */
  dataDir: string;
  /** Creates a database with exactly this name and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Forces dirty pages out to the data files, so a byte search of `dataDir` sees every row. */
  checkpoint(): Promise<void>;
  /** Shuts the cluster down (fast mode) and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * The `bin` directory of the newest PostgreSQL on this machine: `LATCHKEY_TEST_PG_BIN` when set,
 * else the highest `/usr/lib/postgresql/<major>/bin` that holds a `postgres` binary.
 */
export function findPostgresBin(): string {
  const override = process.env['LATCHKEY_TEST_PG_BIN'];
  if (override !== undefined && override !== '') {
    if (!existsSync(join(override, 'postgres'))) throw new Error(`LATCHKEY_TEST_PG_BIN=${override} has no postgres`);
    return override;
  }
  const majors = existsSync(DEBIAN_ROOT)
    ? readdirSync(DEBIAN_ROOT)
        .filter((name) => /^\d+(\.\d+)?$/.test(name) && existsSync(join(DEBIAN_ROOT, name, 'bin', 'postgres')))
        .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))
    : [];
  const newest = majors[0];
  if (newest === undefined) {
    throw new Error(
      `The PostgreSQL tests need the server binaries in ${DEBIAN_ROOT}/<version>/bin: ` +
        'run `apt-get install postgresql` (or set LATCHKEY_TEST_PG_BIN to a directory holding initdb, pg_ctl, postgres).',
    );
  }
  return join(DEBIAN_ROOT, newest, 'bin');
}

/** How to run the cluster's commands: directly, or through `runuser` when we are root. */
interface ClusterUser {
  /** Prefix for every command that touches the data directory. */
  wrap(bin: string, args: string[]): [string, string[]];
  /** Gives a path we made to the cluster user (a no-op when we are not root). */
  own(path: string): void;
}

function clusterUser(): ClusterUser {
  if (process.getuid?.() !== 0) return { wrap: (bin, args) => [bin, args], own: () => {} };
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', CLUSTER_USER], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', CLUSTER_USER], { encoding: 'utf8' }).trim());
  } catch {
    throw new Error(
      `Running as root, the PostgreSQL tests need the '${CLUSTER_USER}' system user ` +
        '(created by `apt-get install postgresql`), because postgres refuses to run as root.',
    );
  }
  return {
    wrap: (bin, args) => ['runuser', ['-u', CLUSTER_USER, '--', bin, ...args]],
    own: (path) => chownSync(path, uid, gid),
  };
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

function quoteConf(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

function logTail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log written)';
  }
}

/** Runs a cluster command with a time limit; its stderr and the server log make the error message. */
async function runStep(user: ClusterUser, bin: string, args: string[], what: string, logFile: string): Promise<void> {
  const [file, argv] = user.wrap(bin, args);
  try {
    await run(file, argv, { timeout: STEP_TIMEOUT_MS, killSignal: 'SIGKILL' });
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`PostgreSQL test cluster: ${what} failed: ${detail}\n--- server log ---\n${logTail(logFile)}`);
  }
}

/**
 * A detached shell that outlives us only to clean up: once our process is gone (even by SIGKILL, which
 * no exit handler sees) it stops the cluster and removes its directory. Polls once a second, for at
 * most a day.
 */
function startWatchdog(user: ClusterUser, pgCtl: string, dataDir: string, dir: string): number | undefined {
  const [file, argv] = user.wrap(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-s']);
  const script =
    'parent=$1; dir=$2; shift 2; i=0; ' +
    'while [ $i -lt 86400 ] && kill -0 "$parent" 2>/dev/null; do sleep 1; i=$((i+1)); done; ' +
    '"$@" >/dev/null 2>&1; rm -rf "$dir"';
  const child = spawn('sh', ['-c', script, 'latchkey-pg-watchdog', String(process.pid), dir, file, ...argv], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  return child.pid;
}

/**
 * Starts a private PostgreSQL cluster from the machine's own binaries (issue 2): a fresh data
 * directory under the system temp dir, initdb as a non-root user, a server on 127.0.0.1 on a free port
 * with its Unix socket inside that directory (so it never meets a system cluster), and fsync off,
 * because a test cluster need not survive a crash.
 */
export async function startPostgres(): Promise<PostgresCluster> {
  const bin = findPostgresBin();
  const user = clusterUser();
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-pg-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const pgCtl = join(bin, 'pg_ctl');
  const password = randomBytes(18).toString('hex');
  let cleanedUp = false;

  /** Last resort on process exit: must be synchronous, so it stops the server at once (immediate mode). */
  const onExit = () => {
    if (cleanedUp) return;
    cleanedUp = true;
    const [file, argv] = user.wrap(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-s']);
    try {
      execFileSync(file, argv, { timeout: 10_000, stdio: 'ignore' });
    } catch {
      // Not running (or already gone): nothing to stop.
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  let watchdog: number | undefined;

  const stop = async () => {
    if (cleanedUp) return;
    try {
      await runStep(user, pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30', '-s'], 'stop', logFile);
    } finally {
      onExit(); // falls back to immediate mode if fast failed; removes the directory either way
      process.off('exit', onExit);
      if (watchdog !== undefined) {
        try {
          process.kill(watchdog);
        } catch {
          // Already exited.
        }
      }
    }
  };

  try {
    user.own(dir);
    const pwFile = join(dir, 'pwfile');
    appendFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    user.own(pwFile);
    await runStep(
      user,
      join(bin, 'initdb'),
      [
        ...['-D', dataDir, '-U', 'postgres', '-E', 'UTF8', '--locale=C', `--pwfile=${pwFile}`],
        ...['--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync'],
      ],
      'initdb',
      logFile,
    );
    rmSync(pwFile);
    appendFileSync(
      join(dataDir, 'postgresql.conf'),
      [
        '',
        '# Latchkey test cluster (test/support/postgres.ts)',
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = ${quoteConf(dir)}`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        '',
      ].join('\n'),
    );
    watchdog = startWatchdog(user, pgCtl, dataDir, dir);
    const port = await startOnFreePort(user, pgCtl, dataDir, logFile);
    const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
    await query(url, 'SELECT 1');
    return {
      url,
      dataDir,
      createDatabase: (name) => createDatabaseNamed(url, name),
      checkpoint: () => query(url, 'CHECKPOINT'),
      stop,
    };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}

async function startOnFreePort(user: ClusterUser, pgCtl: string, dataDir: string, logFile: string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = ['start', '-D', dataDir, '-l', logFile, '-o', `-p ${port}`, '-w', '-t', '30', '-s'];
    try {
      await runStep(user, pgCtl, args, `start on port ${port}`, logFile);
      return port;
    } catch (error) {
      const portTaken = /could not bind|address already in use/i.test(logTail(logFile));
      if (!portTaken || attempt >= PORT_ATTEMPTS) throw error;
    }
  }
}

async function query(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** With a URL's database name replaced by `name`. */
function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function createDatabaseNamed(baseUrl: string, name: string): Promise<string> {
  // Identifiers cannot be bound as parameters, so the name is checked before it is spliced in.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a safe database name: ${JSON.stringify(name)}`);
  await query(baseUrl, `CREATE DATABASE "${name}"`);
  return withDatabase(baseUrl, name);
}

/**
 * Creates a fresh database with a unique name (`<prefix>_<random>`) in the cluster at `baseUrl`, so
 * test files sharing the run's one cluster never see each other's rows. Returns its URL.
 */
export function createTestDatabase(baseUrl: string, prefix: string): Promise<string> {
  const safePrefix = prefix
    .toLowerCase()
    .replaceAll(/[^a-z0-9_]/g, '_')
    .slice(0, 40);
  return createDatabaseNamed(baseUrl, `${safePrefix}_${randomBytes(6).toString('hex')}`);
}
