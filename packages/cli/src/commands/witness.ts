import { LatchkeyError } from '@latchkey/core';
import { type Command, usageError } from '../command.js';
import type { Output } from '../output.js';

/** Where a witness listens and keeps its key and state unless told otherwise (the server's is 8470). */
const DEFAULT_LISTEN = '127.0.0.1:8471';
const DEFAULT_DATA = './data/witness';

const DATA_OPTION = {
  type: 'string',
  value: 'DIR',
  description: `its key (witness.key, 0600) and state (witness.db) (default ${DEFAULT_DATA})`,
} as const;
const NAME_OPTION = {
  type: 'string',
  value: 'NAME',
  description: 'the witness name, needed the first time (it becomes part of the key), e.g. witness.example.org',
} as const;

export const witnessServeCommand: Command = {
  name: 'witness serve',
  summary: 'Run a transparency-log witness (C2SP tlog-witness): cosign checkpoints that extend the last one',
  options: {
    listen: { type: 'string', value: 'HOST:PORT', description: `address to listen on (default ${DEFAULT_LISTEN})` },
    data: DATA_OPTION,
    name: NAME_OPTION,
    log: {
      type: 'string',
      value: 'VKEY',
      multiple: true,
      description: "a log to witness: its checkpoint key, whose name is the log's origin (repeat per log or key)",
    },
    'log-level': { type: 'string', value: 'LEVEL', description: 'pino level: fatal … trace, or silent (default info)' },
  },
  details: [
    'The logs are given as repeated --log flags, one note verifier key each:',
    '  latchkey witness serve --name witness.example.org --log latchkey.example/log+1a2b3c4d+AQ…',
    "Two --log keys with one name are one log signed by either key (a key rotation). The witness's key",
    'is made on the first start; its vkey is printed at every start (and by `latchkey witness key`): give',
    "it to the log's operator. The witness answers POST /add-checkpoint: 200 with a cosignature, 409 with",
    'the size it last cosigned, 400/403/404/422 with {code, message}. SIGINT or SIGTERM stops it (exit 0).',
  ].join('\n'),
  async run(ctx) {
    const logs = ctx.args.strings('log');
    if (logs.length === 0) throw usageError('name at least one log to witness: --log <vkey> (see --help)');
    const { host, port } = parseListen(ctx.args.string('listen') ?? DEFAULT_LISTEN);
    // Loaded here, not at the top: the other commands should not pay for Fastify and SQLite.
    const server = await import('@latchkey/server');
    const witness = await server
      .buildWitnessApp({
        dataDir: ctx.args.string('data') ?? DEFAULT_DATA,
        ...nameOption(ctx.args.string('name')),
        logs,
        logLevel: ctx.args.string('log-level') ?? 'info',
        // Logs go to stderr: stdout carries the command's result alone.
        logStream: process.stderr,
      })
      .catch((error: unknown) => {
        throw asLogFlagError(error);
      });
    let url: string;
    try {
      url = await witness.app.listen({ host, port });
    } catch (error) {
      await witness.app.close();
      throw listenError(error, host, port);
    }
    const origins = witness.logs.map((log) => log.origin);
    ctx.out.result(
      { url, name: witness.key.name, vkey: witness.key.vkey, logs: origins },
      [
        `Latchkey witness ${witness.key.name} listening on ${url}`,
        `vkey: ${witness.key.vkey}`,
        `witnessing: ${origins.join(', ')}`,
      ].join('\n'),
    );
    closeOnSignals(witness.app, ctx.out);
  },
};

export const witnessKeyCommand: Command = {
  name: 'witness key',
  summary: "Print the witness's public key (vkey), making the key first if --name is given and none exists",
  options: { data: DATA_OPTION, name: NAME_OPTION },
  async run(ctx) {
    const server = await import('@latchkey/server');
    const key = server.loadOrCreateWitnessKey(ctx.args.string('data') ?? DEFAULT_DATA, ctx.args.string('name'));
    ctx.out.result({ name: key.name, vkey: key.vkey }, key.vkey);
  },
};

export const witnessCommands: readonly Command[] = [witnessServeCommand, witnessKeyCommand];

function nameOption(name: string | undefined): { name?: string } {
  if (name === '') throw usageError('--name needs a value');
  return name === undefined ? {} : { name };
}

/** `HOST:PORT`, or `[IPv6]:PORT`. */
function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) {
    throw usageError(`--listen: expected HOST:PORT or [IPv6]:PORT, got ${JSON.stringify(text)}`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

/** A log vkey that does not parse is the command line's fault: a usage error naming the flag. */
function asLogFlagError(error: unknown): unknown {
  if (!(error instanceof LatchkeyError) || error.code !== 'LK_LOG_KEY_INVALID') return error;
  return usageError(`--log ${error.message}`);
}

function listenError(error: unknown, host: string, port: number): unknown {
  if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') return error;
  return new LatchkeyError(
    'LK_PORT_IN_USE',
    `Cannot listen on ${host}:${port}: another program is using it. Pick another with --listen HOST:PORT.`,
    { host, port },
  );
}

/** The first SIGINT or SIGTERM closes the witness (its state is committed per request) and exits 0. */
function closeOnSignals(app: { close(): Promise<unknown> }, out: Output): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) process.exit(1);
    closing = true;
    out.note(`${signal}: shutting down`);
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
