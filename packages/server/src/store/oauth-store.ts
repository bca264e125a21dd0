import type { Kysely, Transaction } from 'kysely';
import type { Database, OauthClientRow, OauthScopeRow, OidcPayloadRow } from './schema.js';

type Executor = Kysely<Database> | Transaction<Database>;

/**
 * Storage of the OAuth module (issue 9): oidc-provider's models, clients and scopes, key rotation
 * secrets. Same SQL on SQLite and PostgreSQL; every call is one statement, so each is atomic alone.
 */
export interface OauthStore {
  upsertPayload(row: OidcPayloadRow): Promise<void>;
  findPayload(model: string, id: string): Promise<OidcPayloadRow | undefined>;
  findPayloadBy(model: string, column: 'uid' | 'user_code', value: string): Promise<OidcPayloadRow | undefined>;
  /** Marks the payload consumed; false if it was already consumed (or is gone): one caller wins. */
  consumePayload(model: string, id: string, at: number): Promise<boolean>;
  destroyPayload(model: string, id: string): Promise<void>;
  /** Removes and returns an unexpired payload: at most one caller gets it. */
  takePayload(model: string, id: string, now: number): Promise<OidcPayloadRow | undefined>;
  revokeByGrantId(grantId: string): Promise<void>;
  /** Ends everything an account granted (grants, their codes and tokens) and its key rotation secrets. */
  revokeAccount(accountId: string): Promise<void>;
  /** The account's unexpired grants. */
  listGrants(accountId: string, now: number): Promise<OidcPayloadRow[]>;

  /** Adds a client; false if the id is taken. */
  insertClient(row: OauthClientRow): Promise<boolean>;
  findClient(id: string): Promise<OauthClientRow | undefined>;
  listClients(): Promise<OauthClientRow[]>;
  deleteClient(id: string): Promise<boolean>;

  /** Adds or replaces a scope's registration. */
  putScope(row: OauthScopeRow): Promise<void>;
  listScopes(): Promise<OauthScopeRow[]>;

  /** The account's rotation secret for the scope, storing `fresh` if it has none yet. */
  keyRotationSecret(accountId: string, scope: string, fresh: Uint8Array): Promise<Uint8Array>;

  purgeExpired(now: number): Promise<void>;
}

export class KyselyOauthStore implements OauthStore {
  constructor(private readonly db: Executor) {}

  async upsertPayload(row: OidcPayloadRow) {
    const { model, id, ...rest } = row;
    await this.db
      .insertInto('oidc_payloads')
      .values(row)
      .onConflict((c) => c.columns(['model', 'id']).doUpdateSet(rest))
      .execute();
  }

  findPayload(model: string, id: string) {
    return this.db
      .selectFrom('oidc_payloads')
      .selectAll()
      .where('model', '=', model)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  findPayloadBy(model: string, column: 'uid' | 'user_code', value: string) {
    return this.db
      .selectFrom('oidc_payloads')
      .selectAll()
      .where('model', '=', model)
      .where(column, '=', value)
      .executeTakeFirst();
  }

  async consumePayload(model: string, id: string, at: number) {
    const result = await this.db
      .updateTable('oidc_payloads')
      .set({ consumed_at: at })
      .where('model', '=', model)
      .where('id', '=', id)
      .where('consumed_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async destroyPayload(model: string, id: string) {
    await this.db.deleteFrom('oidc_payloads').where('model', '=', model).where('id', '=', id).execute();
  }

  async takePayload(model: string, id: string, now: number) {
    const row = await this.db
      .deleteFrom('oidc_payloads')
      .where('model', '=', model)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row !== undefined && (row.expires_at === null || row.expires_at > now) ? row : undefined;
  }

  async revokeByGrantId(grantId: string) {
    await this.db.deleteFrom('oidc_payloads').where('grant_id', '=', grantId).execute();
  }

  async revokeAccount(accountId: string) {
    // Only a Grant row names its account; the codes and tokens name their grant.
    const grants = this.db
      .selectFrom('oidc_payloads')
      .select('id')
      .where('model', '=', 'Grant')
      .where('account_id', '=', accountId);
    await this.db.deleteFrom('oidc_payloads').where('grant_id', 'in', grants).execute();
    await this.db
      .deleteFrom('oidc_payloads')
      .where('model', '=', 'Grant')
      .where('account_id', '=', accountId)
      .execute();
    await this.db.deleteFrom('oauth_key_rotation').where('account_id', '=', accountId).execute();
  }

  listGrants(accountId: string, now: number) {
    return this.db
      .selectFrom('oidc_payloads')
      .selectAll()
      .where('model', '=', 'Grant')
      .where('account_id', '=', accountId)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .orderBy('id')
      .execute();
  }

  async insertClient(row: OauthClientRow) {
    const result = await this.db
      .insertInto('oauth_clients')
      .values(row)
      .onConflict((c) => c.column('id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  findClient(id: string) {
    return this.db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirst();
  }

  listClients() {
    return this.db.selectFrom('oauth_clients').selectAll().orderBy('id').execute();
  }

  async deleteClient(id: string) {
    const result = await this.db.deleteFrom('oauth_clients').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }

  async putScope(row: OauthScopeRow) {
    const { scope, ...rest } = row;
    await this.db
      .insertInto('oauth_scopes')
      .values(row)
      .onConflict((c) => c.column('scope').doUpdateSet(rest))
      .execute();
  }

  listScopes() {
    return this.db.selectFrom('oauth_scopes').selectAll().orderBy('scope').execute();
  }

  async keyRotationSecret(accountId: string, scope: string, fresh: Uint8Array) {
    // Insert-if-absent then read: two first requests at once agree on one secret.
    await this.db
      .insertInto('oauth_key_rotation')
      .values({ account_id: accountId, scope, secret: fresh })
      .onConflict((c) => c.columns(['account_id', 'scope']).doNothing())
      .execute();
    const row = await this.db
      .selectFrom('oauth_key_rotation')
      .select('secret')
      .where('account_id', '=', accountId)
      .where('scope', '=', scope)
      .executeTakeFirstOrThrow();
    return new Uint8Array(row.secret);
  }

  async purgeExpired(now: number) {
    await this.db.deleteFrom('oidc_payloads').where('expires_at', '<=', now).execute();
  }
}
