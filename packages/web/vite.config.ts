import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * The web app's build. The SDK and core are compiled from their TypeScript sources (no build step of
 * their own); `#platform` inside the SDK resolves to its browser file through the `browser` condition.
 * @serenity-kit/opaque ships its wasm inline as base64, so no wasm plugin or asset handling is needed.
 */
/**
 * The OPAQUE key stretching the app pins, from the same LATCHKEY_KEY_STRETCHING the server reads
 * (`npm start` builds with the server's environment): empty pins nothing, and the SDK's bounds apply.
 */
const keyStretching = process.env.LATCHKEY_KEY_STRETCHING ?? '';

export default defineConfig({
  root: here('.'),
  define: { __LATCHKEY_KEY_STRETCHING__: JSON.stringify(keyStretching) },
  base: './',
  // Preact's automatic JSX runtime: components are .tsx files, no React and no plugin needed.
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  resolve: {
    alias: {
      '@latchkey/client': here('../client/src/index.ts'),
      '@latchkey/core': here('../core/src/index.ts'),
    },
  },
  build: {
    outDir: here('dist'),
    emptyOutDir: true,
    target: 'es2022',
    // The OPAQUE wasm (~430 kB of base64) is one chunk by nature; warn only well above it.
    chunkSizeWarningLimit: 1500,
    // Every asset a file of its own: the server's CSP refuses data: URLs, which Vite would otherwise
    // make of any asset under 4 kB.
    assetsInlineLimit: 0,
  },
});
