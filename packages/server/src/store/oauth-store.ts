import type { Compilable, CompiledQuery, Kysely, QueryResult, Transaction } from 'kysely';
import type { Database, OauthClientRow, OauthScopeRow, OidcPayloadRow } from './schema.js';

type Executor = Kysely<Database> | Transaction<Database>;

/**
 * A query of a fixed shape, built and compiled by Kysely once per store and then only bound and run.
 * Every OAuth request runs several of these (a token exchange nine), and building and compiling each
 * afresh was about an eighth of the exchange's CPU time (bench/oauth-token.bench.ts profile). `build`
 * receives named placeholders in place of values; the compiled parameters are mapped back to the names,
 * so a call binds by name whatever order the SQL puts them in.
 */
class PreparedQuery<Row, Args extends object> {
  private compiled: { query: CompiledQuery<Row>; names: (keyof Args & string)[] } | undefined;

  constructor(
    private readonly argNames: readonly (keyof Args & string)[],
    private readonly build: (db: Executor, args: Args) => Compilable<Row>,
  ) {}

  run(db: Executor, args: Args): Promise<QueryResult<Row>> {
    this.compiled ??= this.compile(db);
    const { query, names } = this.compiled;
    return db.executeQuery<Row>({ ...query, parameters: names.map((name) => args[name]) });
  }

  private compile(db: Executor) {
    const placeholders = Object.fromEntries(this.argNames.map((name) => [name, `\u0000${name}`])) as Args;
    const query = this.build(db, placeholders).compile();
    const names = query.parameters.map((parameter) => {
      if (typeof parameter !== 'string' || !parameter.startsWith('\u0000')) {
        throw new Error(`a prepared query holds a literal parameter: ${query.sql}`);
      }
      return parameter.slice(1) as keyof Args & string;
    });
    return { query, names };
  }
}

const PAYLOAD_COLUMNS = [
  'model',
  'id',
  'payload',
  'grant_id',
  'uid',
  'user_code',
  'account_id',
  'expires_at',
  'consumed_at',
] as const satisfies readonly (keyof OidcPayloadRow)[];

/** The OAuth store's hot queries: those of every authorization and token request. */
function preparedQueries() {
  return {
    upsertPayload: new PreparedQuery<never, OidcPayloadRow>(PAYLOAD_COLUMNS, (db, row) =>
      db
        .insertInto('oidc_payloads')
        .values(row)
        .onConflict((c) =>
          c.columns(['model', 'id']).doUpdateSet((eb) => ({
            payload: eb.ref('excluded.payload'),
            grant_id: eb.ref('excluded.grant_id'),
            uid: eb.ref('excluded.uid'),
            user_code: eb.ref('excluded.user_code'),
            account_id: eb.ref('excluded.account_id'),
            expires_at: eb.ref('excluded.expires_at'),
            consumed_at: eb.ref('excluded.consumed_at'),
          })),
        ),
    ),
    findPayload: new PreparedQuery<OidcPayloadRow, { model: string; id: string }>(
      ['model', 'id'],
      (db, { model, id }) => db.selectFrom('oidc_payloads').selectAll().where('model', '=', model).where('id', '=', id),
    ),
    findPayloadByUid: new PreparedQuery<OidcPayloadRow, { model: string; value: string }>(
      ['model', 'value'],
      (db, { model, value }) =>
        db.selectFrom('oidc_payloads').selectAll().where('model', '=', model).where('uid', '=', value),
    ),
    findPayloadByUserCode: new PreparedQuery<OidcPayloadRow, { model: string; value: string }>(
      ['model', 'value'],
      (db, { model, value }) =>
        db.selectFrom('oidc_payloads').selectAll().where('model', '=', model).where('user_code', '=', value),
    ),
    consumePayload: new PreparedQuery<never, { model: string; id: string; at: number }>(
      ['model', 'id', 'at'],
      (db, { model, id, at }) =>
        db
          .updateTable('oidc_payloads')
          .set({ consumed_at: at })
          .where('model', '=', model)
          .where('id', '=', id)
          .where('consumed_at', 'is', null),
    ),
    destroyPayload: new PreparedQuery<never, { model: string; id: string }>(['model', 'id'], (db, { model, id }) =>
      db.deleteFrom('oidc_payloads').where('model', '=', model).where('id', '=', id),
    ),
    takePayload: new PreparedQuery<OidcPayloadRow, { model: string; id: string }>(
      ['model', 'id'],
      (db, { model, id }) =>
        db.deleteFrom('oidc_payloads').where('model', '=', model).where('id', '=', id).returningAll(),
    ),
    findClient: new PreparedQuery<OauthClientRow, { id: string }>(['id'], (db, { id }) =>
      db.selectFrom('oauth_clients').selectAll().where('id', '=', id),
    ),
    listScopes: new PreparedQuery<OauthScopeRow, Record<string, never>>([], (db) =>
      db.selectFrom('oauth_scopes').selectAll().orderBy('scope'),
    ),
  };
}

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
  /** Deletes the payload; false if it was gone already: one caller deletes it. */
  destroyPayload(model: string, id: string): Promise<boolean>;
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
  private readonly prepared = preparedQueries();

  constructor(private readonly db: Executor) {}

  async upsertPayload(row: OidcPayloadRow) {
    await this.prepared.upsertPayload.run(this.db, row);
  }

  async findPayload(model: string, id: string) {
    return (await this.prepared.findPayload.run(this.db, { model, id })).rows[0];
  }

  async findPayloadBy(model: string, column: 'uid' | 'user_code', value: string) {
    const query = column === 'uid' ? this.prepared.findPayloadByUid : this.prepared.findPayloadByUserCode;
    return (await query.run(this.db, { model, value })).rows[0];
  }

  async consumePayload(model: string, id: string, at: number) {
    const result = await this.prepared.consumePayload.run(this.db, { model, id, at });
    return Number(result.numAffectedRows) === 1;
  }

  async destroyPayload(model: string, id: string) {
    const result = await this.prepared.destroyPayload.run(this.db, { model, id });
    return Number(result.numAffectedRows) === 1;
  }

  async takePayload(model: string, id: string, now: number) {
    const row = (await this.prepared.takePayload.run(this.db, { model, id })).rows[0];
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

  async findClient(id: string) {
    return (await this.prepared.findClient.run(this.db, { id })).rows[0];
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

  async listScopes() {
    return (await this.prepared.listScopes.run(this.db, {})).rows;
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
