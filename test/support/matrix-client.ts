import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClientPrefix, createClient, type MatrixClient, MatrixError, Method } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { RustBackupManager } from 'matrix-js-sdk/lib/rust-crypto/backup.js';
import { OutgoingRequestProcessor } from 'matrix-js-sdk/lib/rust-crypto/OutgoingRequestProcessor.js';

/**
 * A Matrix client as matrix-js-sdk 36 builds one, pointed at a Latchkey server: its own HTTP client
 * (`MatrixHttpApi`), its own backup manager and request processor, and the matrix-sdk-crypto-wasm it
 * ships with. matrix-js-sdk pins its own wasm (13.x, nested under it) and checks requests with
 * `instanceof` against that copy's classes, so the OlmMachine must come from the very same module
 * instance: it is loaded by file URL from beside matrix-js-sdk, as matrix-js-sdk's own import loads it.
 */

export type Wasm = typeof import('@matrix-org/matrix-sdk-crypto-wasm');

// The client logs every request at info; the tests read their own assertions, not its chatter.
logger.setLevel(process.env.MXLOG === '1' ? 'debug' : 'warn');

let loaded: Promise<Wasm> | undefined;

/** The matrix-sdk-crypto-wasm module instance matrix-js-sdk itself uses, initialised. */
export function jsSdkWasm(): Promise<Wasm> {
  loaded ??= (async () => {
    const sdkRoot = dirname(createRequire(import.meta.url).resolve('matrix-js-sdk/package.json'));
    const entry = join(sdkRoot, 'node_modules', '@matrix-org', 'matrix-sdk-crypto-wasm', 'node.mjs');
    const wasm = (await import(pathToFileURL(entry).href)) as Wasm;
    await wasm.initAsync();
    return wasm;
  })();
  return loaded;
}

export interface MatrixPeer {
  client: MatrixClient;
  /** The backup manager a matrix-js-sdk client with Rust crypto runs (create, upload loop, restore, delete). */
  backup: RustBackupManager;
  /** What turns the OlmMachine's outgoing requests (a KeysBackupRequest among them) into HTTP. */
  requests: OutgoingRequestProcessor;
  machine: InstanceType<Wasm['OlmMachine']>;
  wasm: Wasm;
  close(): void;
}

/** A Matrix device (`@user:latchkey.test`, device `deviceId`) whose homeserver is the Latchkey server at `baseUrl`. */
export async function matrixPeer(
  baseUrl: string,
  accessToken: string,
  options: { deviceId?: string; useAuthorizationHeader?: boolean } = {},
): Promise<MatrixPeer> {
  const wasm = await jsSdkWasm();
  const userId = '@user:latchkey.test';
  const client = createClient({
    baseUrl,
    accessToken,
    userId,
    ...(options.useAuthorizationHeader === undefined ? {} : { useAuthorizationHeader: options.useAuthorizationHeader }),
  });
  const machine = await wasm.OlmMachine.initialize(
    new wasm.UserId(userId),
    new wasm.DeviceId(options.deviceId ?? 'PEER'),
  );
  // biome-ignore lint/suspicious/noExplicitAny: the classes are internal to matrix-js-sdk; its typings name the wasm types it pins.
  const requests = new OutgoingRequestProcessor(machine as any, client.http);
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  const backup = new RustBackupManager(machine as any, client.http, requests);
  return {
    client,
    backup,
    requests,
    machine,
    wasm,
    close() {
      backup.stop();
      client.stopClient();
      machine.close();
    },
  };
}

/** Makes `sessions` real Megolm sessions in each of `rooms` rooms on the peer's machine (as sending messages would). */
export async function makeSessions(peer: MatrixPeer, rooms: string[], sessions = 1): Promise<void> {
  const { wasm, machine } = peer;
  for (const room of rooms) {
    for (let i = 0; i < sessions; i++) {
      if (i > 0) await machine.invalidateGroupSession(new wasm.RoomId(room));
      await machine.shareRoomKey(new wasm.RoomId(room), [], new wasm.EncryptionSettings());
    }
  }
}

/** Every room key the peer's machine holds, as its key export has them. */
export async function exportedKeys(peer: MatrixPeer): Promise<Array<Record<string, unknown> & ExportedKeyIds>> {
  return JSON.parse(await peer.machine.exportRoomKeys(() => true));
}
interface ExportedKeyIds {
  room_id: string;
  session_id: string;
  session_key: string;
}

/**
 * Uploads every key the machine has not backed up yet, the way matrix-js-sdk's backup loop does: a
 * KeysBackupRequest from the machine, sent by the request processor, the answer handed back to the
 * machine (which parses it). Returns the number of requests sent.
 */
export async function uploadPending(peer: MatrixPeer): Promise<number> {
  let sent = 0;
  for (
    let request = await peer.machine.backupRoomKeys();
    request !== undefined;
    request = await peer.machine.backupRoomKeys()
  ) {
    // biome-ignore lint/suspicious/noExplicitAny: the wasm request class, as above.
    await peer.requests.makeOutgoingRequest(request as any);
    sent++;
  }
  return sent;
}

export { ClientPrefix, MatrixError, Method };
