import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * The notes page's build (`vite build examples/notes`), into examples/notes/dist, which server.ts
 * serves. The SDK and core are compiled from their TypeScript sources, as the web app's build does;
 * the SDK's `#platform` import takes its browser file through Vite's `browser` condition.
 */
export default defineConfig({
  root: here('web'),
  base: '/',
  resolve: {
    alias: {
      '@latchkey/client': here('../../packages/client/src/index.ts'),
      '@latchkey/core': here('../../packages/core/src/index.ts'),
    },
  },
  build: {
    outDir: here('dist'),
    emptyOutDir: true,
    target: 'es2022',
    // server.ts serves /assets/* only, and its CSP refuses data: URLs.
    assetsInlineLimit: 0,
    // The SDK's index brings the OPAQUE wasm along (it ships inline); warn only well above it.
    chunkSizeWarningLimit: 1500,
  },
});
