#!/usr/bin/env node
// The `latchkey` command. The repository runs TypeScript directly (no build step), so this launcher
// registers tsx's loader and then hands over to the TypeScript entry point.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
