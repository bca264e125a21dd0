import { serveOverIpc } from './server-process.js';

/** The default script of `startServerProcess`: a plain server, configured by its parent. */
await serveOverIpc();
