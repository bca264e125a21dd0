import type { MasterKey } from '@latchkey/core';
import type { ServerConfig } from './config.js';
import type { Mailer } from './mail/mailer.js';
import type { Outbox } from './mail/outbox.js';
import type { TransparencyLog } from './modules/transparency-log/index.js';
import type { Store } from './store/store.js';

/** What every module works with: storage, keys, mail, and the clock and randomness as inputs. */
export interface ServerContext {
  store: Store;
  masterKey: MasterKey;
  /** The OPAQUE server setup (OPRF seed and server key pair), as @serenity-kit/opaque serialises it. */
  opaqueSetup: string;
  /** Sends and waits: for mail whose failure the request must report (sign-up). */
  mailer: Mailer;
  /** Sends without waiting, logging a failure: for mail whose wait or failure would tell something. */
  outbox: Outbox;
  config: ServerConfig;
  /** The server's one transparency log: other modules append to it (issue 10). */
  transparencyLog: TransparencyLog;
  now(): number;
  random(length: number): Uint8Array;
}
