import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * What browsers are told about our answers. The web app holds kB and room keys in its page, so one
 * injected script would read them all: scripts come from this origin only, never from text in the
 * page; no site may frame a page of ours (the OAuth consent screen least of all); no answer is sniffed
 * into another type, leaks its URL as a referrer, or lingers in a cache.
 */
const CONTENT_SECURITY_POLICY = {
  'default-src': ["'self'"],
  // OPAQUE's wasm arrives inside the bundle and is compiled in the page: 'wasm-unsafe-eval' allows
  // WebAssembly compilation and nothing else (no eval, no new Function).
  'script-src': ["'self'", "'wasm-unsafe-eval'"],
  'script-src-attr': ["'none'"],
  // The app's only styles are its stylesheet file; an injected <style> could read values out of the
  // page by attribute selectors that fetch a URL per match.
  'style-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
} as const;

/**
 * Swagger UI at /docs describes the public API and holds no keys. It draws its icons from data: URLs
 * and inserts a <style> element of its own while rendering, so its pages alone may use both. Its
 * scripts stay as strict as everywhere: an injected style there could reveal only what the page
 * shows, which is the public OpenAPI document.
 */
function relaxForSwaggerUi(policy: string): string {
  return policy
    .replace(/(^|;)default-src 'self'/, "$1default-src 'self';img-src 'self' data:")
    .replace(/(^|;)style-src 'self'/, "$1style-src 'self' 'unsafe-inline'");
}

/** @fastify/swagger-ui's option that rewrites the CSP on its own routes only. */
export const swaggerUiCsp = { transformStaticCSP: relaxForSwaggerUi } as const;

/**
 * Routes that answer CORS themselves. The Matrix spec ("Web Browser Clients") wants every origin on
 * its routes, and the OAuth server (oidc-provider) applies its own per-client CORS rules.
 */
const OWN_CORS_PREFIXES = ['/_matrix', '/oauth'];

function answersCorsItself(url: string): boolean {
  const path = url.split('?', 1)[0] ?? '';
  return OWN_CORS_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}

/** The methods and request headers the SDK's transport uses; it reads no response header. */
const CORS_METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const CORS_REQUEST_HEADERS = ['Authorization', 'Content-Type'];
/** How long a browser may reuse a preflight's answer (Chromium caps it at two hours). */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * Helmet's headers on every answer Fastify sends, `Cache-Control: no-store` on every API answer (the
 * web app's files keep @fastify/static's own), and CORS for the listed origins only. Register before
 * any route, so their hooks run first for every route, the 404 handler and middleware mounted later.
 */
export async function registerBrowserPolicy(app: FastifyInstance, corsOrigins: readonly string[]): Promise<void> {
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: { useDefaults: false, directives: CONTENT_SECURITY_POLICY },
    xFrameOptions: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // Kept as helmet has them: nosniff, COOP same-origin, CORP same-origin (which binds no CORS
    // request), HSTS (browsers heed it over HTTPS only), Origin-Agent-Cluster, the legacy X-* ones.
  });
  app.addHook('onRequest', async (_request, reply) => {
    void reply.header('cache-control', 'no-store');
  });
  const listed = new Set(corsOrigins);
  await app.register(fastifyCors, {
    // An unlisted origin (or a route answering CORS itself) gets no CORS header at all, and its
    // preflight falls through to the 404 handler: nothing a browser would accept.
    delegator: (request: FastifyRequest, callback) => {
      const origin = request.headers.origin;
      callback(null, {
        origin: !answersCorsItself(request.url) && origin !== undefined && listed.has(origin) ? origin : false,
        methods: CORS_METHODS,
        allowedHeaders: CORS_REQUEST_HEADERS,
        maxAge: PREFLIGHT_MAX_AGE_SECONDS,
        // Bearer tokens, never cookies: no page may act with credentials the browser adds by itself.
        credentials: false,
      });
    },
  });
}

/**
 * For the few answers sent before any hook can run (a URL the router cannot decode): a JSON error
 * needs no content at all, so it gets the strictest policy by hand.
 */
export function lockDownBareAnswer(reply: FastifyReply): void {
  void reply.headers({
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
}
