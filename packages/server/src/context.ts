import type { MasterKey } from '@latchkey/core';
import type { ServerConfig } from './config.js';
import type { Mailer } from './mail/mailer.js';
import type { Store } from './store/store.js';

/** What every module works with: storage, keys, mail, and the clock and randomness as inputs. */
export interface ServerContext {
  store: Store;
  masterKey: MasterKey;
  /** The OPAQUE server setup (OPRF seed and server key pair), as @serenity-kit/opaque serialises it. */
  opaqueSetup: string;
  mailer: Mailer;
  config: ServerConfig;
  now(): number;
  random(length: number): Uint8Array;
}
