import type { OauthGrant, Session } from '@latchkey/client';
import { useSignal } from '@preact/signals';
import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import type { App } from './app.js';
import { Feedback, Panel, ScopeName } from './oauth-notice.js';

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
 */
export function GrantedApps({ session }: { app: App; session: Session }) {
  const grants = useSignal<GrantedApp[] | undefined>(undefined);
  const progress = useSignal<string | undefined>(undefined);
  const error = useSignal<unknown>(undefined);
  const busy = progress.value !== undefined;

  const run = async (message: string, action: () => Promise<void>) => {
    error.value = undefined;
    progress.value = message;
    try {
      await action();
    } catch (failure) {
      error.value = failure;
    } finally {
      progress.value = undefined;
    }
  };
  const load = async () => {
    grants.value = byApp(await session.listOauthGrants());
  };
  const revoke = (grant: GrantedApp) =>
    run(`Revoking ${grant.clientName}…`, async () => {
      try {
        // Each grant is tried even if another fails; the first failure is the one shown.
        const results = await Promise.allSettled(grant.grantIds.map((id) => session.revokeOauthGrant(id)));
        const failed = results.find((result) => result.status === 'rejected');
        if (failed !== undefined) throw failed.reason;
      } finally {
        // Also after a failure: a grant revoked from another device leaves the list, its error still shown.
        await load().catch(() => undefined);
      }
    });
  useEffect(() => {
    void run('Loading apps…', load);
  }, [session]);

  const list = grants.value;
  return (
    <Panel title="Apps with access">
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
              <button
                type="button"
                class="danger small"
                disabled={busy}
                aria-label={`Revoke ${grant.clientName}`}
                onClick={() => void revoke(grant)}
              >
                Revoke
              </button>
            </li>
          ))}
        </ul>
      )}
      <Feedback progress={progress.value} error={error.value} />
    </Panel>
  );
}

/** Draws {@link GrantedApps} into `mount` (account.ts's hook until the Preact router). */
export function showGrantedApps(mount: HTMLElement, app: App, session: Session): void {
  render(<GrantedApps app={app} session={session} />, mount);
}
