import type { errors as OidcErrors } from 'oidc-provider';
import type { OauthStore } from '../../store/oauth-store.js';
import type { OidcPayloadRow } from '../../store/schema.js';
import { clientMetadata } from './clients.js';

/** oidc-provider's adapter payload: a JSON object, some of whose fields the contract indexes. */
type Payload = Record<string, unknown> & {
  grantId?: string;
  uid?: string;
  userCode?: string;
  accountId?: string;
  consumed?: number;
};

/** Models that consuming twice must refuse, so a code or refresh token is redeemed by one request only. */
const SINGLE_USE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/**
 * oidc-provider's storage adapter (its adapter contract: find, findByUid, findByUserCode, upsert,
 * consume, destroy, revokeByGrantId) over our database, so every node of a cluster sees the same codes,
 * grants, tokens and interactions. Clients come from the admin-registered table instead.
 */
export function adapterFor(
  store: () => OauthStore,
  now: () => number,
  errors: typeof OidcErrors,
  onScopes: (registered: string[]) => void = () => {},
) {
  return class LatchkeyAdapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      const at = now();
      const consumed = typeof payload.consumed === 'number' ? payload.consumed * 1000 : null;
      await store().upsertPayload({
        model: this.model,
        id,
        payload: JSON.stringify(payload),
        grant_id: payload.grantId ?? null,
        uid: payload.uid ?? null,
        user_code: payload.userCode ?? null,
        account_id: this.model === 'Grant' ? (payload.accountId ?? null) : null,
        expires_at: expiresIn === undefined ? null : at + expiresIn * 1000,
        consumed_at: consumed,
      });
    }

    async find(id: string): Promise<Payload | undefined> {
      if (this.model === 'Client') return clientMetadata(store(), id, onScopes);
      return this.live(await store().findPayload(this.model, id));
    }

    async findByUid(uid: string): Promise<Payload | undefined> {
      return this.live(await store().findPayloadBy(this.model, 'uid', uid));
    }

    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      return this.live(await store().findPayloadBy(this.model, 'user_code', userCode));
    }

    /**
     * Marks the model consumed, atomically: oidc-provider reads `consumed` and then consumes, so two
     * requests redeeming one code at once would both pass its check; here only the first one's update
     * lands and the others get invalid_grant.
     */
    async consume(id: string): Promise<void> {
      const won = await store().consumePayload(this.model, id, now());
      if (!won && SINGLE_USE.has(this.model)) throw new errors.InvalidGrant('grant already consumed');
    }

    /**
     * Deletes the model. An Interaction is destroyed by one thing only, its resume (where the code is
     * issued), after oidc-provider has read it: two resumes of one interaction (a double click, or two
     * nodes) would both have read it and both issue a code. Only the request whose delete lands goes on;
     * the others get what a late resume gets, "interaction session not found".
     */
    async destroy(id: string): Promise<void> {
      const deleted = await store().destroyPayload(this.model, id);
      if (!deleted && this.model === 'Interaction') throw new errors.SessionNotFound('interaction session not found');
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await store().revokeByGrantId(grantId);
    }

    /** Expired rows are not answered (the sweep deletes them later); consumption is read back in seconds. */
    private live(row: OidcPayloadRow | undefined): Payload | undefined {
      if (row === undefined || (row.expires_at !== null && row.expires_at <= now())) return undefined;
      const payload = JSON.parse(row.payload) as Payload;
      if (row.consumed_at !== null) payload.consumed = Math.floor(row.consumed_at / 1000);
      return payload;
    }
  };
}
