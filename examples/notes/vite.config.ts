import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * The notes page's build (`vite build examples/notes`), into examples/notes/dist, which server.ts
 * serves. The SDK's relier and core are compiled from their TypeScript sources, as the web app's build
 * does. The page imports `@latchkey/client/relier`, not the whole SDK: an app that only signs in needs
 * no OPAQUE (whose wasm would also need 'wasm-unsafe-eval' in the page's CSP).
 */
export default defineConfig({
  root: here('web'),
  base: '/',
  resolve: {
    alias: [
      { find: /^@latchkey\/client\/relier$/, replacement: here('../../packages/client/src/relier.ts') },
      { find: /^@latchkey\/core$/, replacement: here('../../packages/core/src/index.ts') },
    ],
  },
  build: {
    outDir: here('dist'),
    emptyOutDir: true,
    target: 'es2022',
    // server.ts serves /assets/* only, and its CSP refuses data: URLs.
    assetsInlineLimit: 0,
  },
});
