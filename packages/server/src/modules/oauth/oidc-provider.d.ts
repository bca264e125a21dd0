/**
 * oidc-provider ships no TypeScript types (and @types/oidc-provider lags v9), so this declares the part
 * of its API the oauth module uses. Koa's context is left loose on purpose: its `oidc` bag is typed here
 * only as far as we read it.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface OidcEntities {
    AuthorizationCode?: { jti: string; exp: number; clientId: string };
    Interaction?: { uid: string; result?: Record<string, unknown> };
    Grant?: { jti: string };
  }

  export interface KoaContextWithOIDC {
    path: string;
    status: number;
    type: string;
    body: unknown;
    oidc: {
      route?: string;
      params?: Record<string, unknown>;
      result?: Record<string, unknown> & { consent?: unknown };
      entities: OidcEntities;
      client?: { clientId: string };
    };
  }

  export interface Interaction {
    uid: string;
    exp: number;
    grantId?: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, unknown> & { client_id: string; scope?: string; keys_jwk?: string };
    session?: { accountId?: string };
  }

  export interface GrantInstance {
    accountId: string;
    clientId: string;
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  }

  // biome-ignore lint/suspicious/noExplicitAny: oidc-provider's configuration is a large, loosely typed object.
  export type Configuration = Record<string, any>;

  export default class Provider {
    constructor(issuer: string, configuration: Configuration);
    proxy: boolean;
    issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>): void;
    on(event: string, listener: (...args: unknown[]) => void): void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionResult(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<string>;
    Grant: {
      new (init: { accountId: string; clientId: string }): GrantInstance;
      find(id: string): Promise<GrantInstance | undefined>;
    };
  }

  export const errors: {
    InvalidRequest: new (description: string) => Error;
    InvalidGrant: new (description: string) => Error;
    InvalidScope: new (description: string, scope?: string) => Error;
    SessionNotFound: new (description: string) => Error;
  };

  export const interactionPolicy: {
    base(): { get(name: string): { checks: unknown[] } | undefined };
    Check: {
      new (reason: string, description: string, check: (ctx: KoaContextWithOIDC) => boolean): unknown;
      REQUEST_PROMPT: boolean;
      NO_NEED_TO_PROMPT: boolean;
    };
  };
}

declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  /** oidc-provider's internal per-provider state (configuration, features, ...). */
  export default function instance(provider: unknown): unknown;
}
