import type { OauthGrant, Session } from '@latchkey/client';
import { useSignal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import { guardSession } from './account.js';
import type { App } from './app.js';
import { Button, Panel, runAction, useScope } from './controls.js';
import { FeedbackRegions, useFeedback } from './notices.js';
import { ScopeName } from './oauth-scopes.js';

/** One app as the list shows it: every grant the account gave it (each consent may make one), merged. */
interface GrantedApp {
  clientId: string;
  clientName: string;
  scopes: string[];
  grantIds: string[];
}

function byApp(grants: readonly OauthGrant[]): GrantedApp[] {
  const apps = new Map<string, GrantedApp>();
  for (const grant of grants) {
    const app = apps.get(grant.clientId) ?? {
      clientId: grant.clientId,
      clientName: grant.clientName,
      scopes: [],
      grantIds: [],
    };
    app.grantIds.push(grant.grantId);
    for (const scope of grant.scopes) if (!app.scopes.includes(scope)) app.scopes.push(scope);
    apps.set(grant.clientId, app);
  }
  return [...apps.values()];
}

/**
 * The apps this account granted through OAuth (issue 9), each with its scopes and a Revoke button:
 * revoking ends every grant of that app, and with them its tokens and codes, so it can no longer refresh.
 * A session ended elsewhere goes back to the log-in, as on the other account panels ({@link guardSession}).
 */
export function GrantedApps({ app, session }: { app: App; session: Session }) {
  const guarded = guardSession(app);
  const grants = useSignal<GrantedApp[] | undefined>(undefined);
  const panel = useScope();
  const say = useFeedback();
  const load = guarded(async () => {
    grants.value = byApp(await session.listOauthGrants());
  });
  const revoke = (grant: GrantedApp) =>
    runAction(
      panel,
      say,
      `Revoking ${grant.clientName}…`,
      guarded(async () => {
        try {
          // Each grant is tried even if another fails; the first failure is the one shown.
          const results = await Promise.allSettled(grant.grantIds.map((id) => session.revokeOauthGrant(id)));
          const failed = results.find((result) => result.status === 'rejected');
          if (failed !== undefined) throw failed.reason;
        } finally {
          // Also after a failure: a grant revoked from another device leaves the list, its error still shown.
          await load().catch(() => undefined);
        }
      }),
    );
  // Loaded in the background as the account's other panels are: not through runAction, which would
  // clear the notice the account screen opened with.
  useEffect(() => {
    say.progress('Loading apps…');
    load().then(
      () => {
        if (say.busy === 'Loading apps…') say.clear();
      },
      (error: unknown) => say.error(error),
    );
  }, [session]);

  const list = grants.value;
  return (
    <Panel title="Apps with access" scope={panel}>
      <p class="aside">
        Apps you allowed to use your account. Revoking one signs it out at once; it keeps any keys it already received.
      </p>
      {list === undefined ? null : list.length === 0 ? (
        <p data-testid="no-granted-apps">No app has access to your account.</p>
      ) : (
        <ul class="granted-apps">
          {list.map((grant) => (
            <li key={grant.clientId} data-testid="granted-app" data-client-id={grant.clientId}>
              <strong>{grant.clientName}</strong>
              <ul class="scopes">
                {grant.scopes.map((scope) => (
                  <li key={scope} data-scope={scope}>
                    <ScopeName scope={scope} />
                  </li>
                ))}
              </ul>
              <Button class="danger small" aria-label={`Revoke ${grant.clientName}`} onClick={() => void revoke(grant)}>
                Revoke
              </Button>
            </li>
          ))}
        </ul>
      )}
      <FeedbackRegions say={say} />
    </Panel>
  );
}
