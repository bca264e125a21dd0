/** The `latchkey` command's entry point: `tsx packages/cli/src/main.ts <command> …`. */
import { run } from './cli.js';

// exitCode, not exit(): stdout may still be draining, and `serve` keeps running until a signal.
process.exitCode = await run(process.argv.slice(2));
