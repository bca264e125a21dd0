import type * as OidcProvider from 'oidc-provider';

/** What oidc-provider prints on import under Node 20, which it runs on fine (issue 9 tried it). */
const UNSUPPORTED_RUNTIME = 'oidc-provider WARNING: Unsupported runtime.';

let loading: Promise<typeof OidcProvider> | undefined;

/**
 * Loads oidc-provider on first use, so commands that only touch the database (`latchkey oauth client
 * add`) never load it, and without its import-time Node-version warning: on the CLI's stderr that line
 * would read as a fault. Other warnings pass through untouched.
 */
export function loadOidcProvider(): Promise<typeof OidcProvider> {
  loading ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].startsWith(UNSUPPORTED_RUNTIME)) return;
      warn(...args);
    };
    try {
      return await import('oidc-provider');
    } finally {
      console.warn = warn;
    }
  })();
  return loading;
}
