/** @latchkey/cli: the `latchkey` command, also callable in-process. */
export { COMMANDS, type Io, run } from './cli.js';
export { keystoreFilePath, type SavedSession, sessionFilePath } from './state.js';
