/** @latchkey/server: the Fastify server and its storage. */
export { type AppOptions, buildApp, VERSION } from './app.js';
export { DEFAULTS, loadConfig, parsePort, type ServerConfig } from './config.js';
export type { ServerContext } from './context.js';
export { logMailer, type Mailer, type MailMessage, smtpMailer } from './mail/mailer.js';
export {
  addOauthClient,
  addOauthScope,
  type ClientInfo as OauthClientInfo,
  listOauthClients,
  listOauthScopes,
  removeOauthClient,
  type ScopeInfo as OauthScopeInfo,
} from './modules/oauth/admin.js';
export {
  LOG_PREFIX,
  MAX_ENTRY_BYTES,
  type TransparencyLog,
} from './modules/transparency-log/index.js';
export { type Connection, connect } from './store/database.js';
export { openStore } from './store/kysely-store.js';
export type { Store } from './store/store.js';
export { buildWitnessApp, type WitnessOptions, type WitnessServer } from './witness/witness-app.js';
export { loadOrCreateWitnessKey, type WitnessKey } from './witness/witness-key.js';
