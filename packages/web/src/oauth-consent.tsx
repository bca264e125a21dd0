import { LatchkeyError, type OauthInteraction, type OauthScopeRequest, type Session } from '@latchkey/client';
import { useSignal } from '@preact/signals';
import { type ComponentChildren, render } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import type { App } from './app.js';
import { Feedback, nextPaint, Panel, ScopeName } from './oauth-notice.js';
import { clearMessages, DERIVING } from './ui.js';

/**
 * The OAuth consent page (issue 9), at `#/oauth/consent/<uid>` where the server sends the browser:
 * it shows what the app asks for, signs the user in (OPAQUE) when this tab has no fresh session with
 * its keys, and on Allow derives the app's keys here and posts only their encryption to the app's
 * one-time key. Leaving is `location.assign`, never a form post: the CSP's form-action 'self' would
 * block the cross-origin redirect to the app.
 */

type Stage =
  | { kind: 'loading' }
  | { kind: 'unavailable'; error: unknown }
  | { kind: 'login'; interaction: OauthInteraction; error?: unknown }
  | { kind: 'request'; interaction: OauthInteraction; session: Session }
  | { kind: 'leaving'; interaction: OauthInteraction };

/** Errors that mean "prove the password again", not "this request failed". */
const NEEDS_LOGIN = new Set(['LK_REAUTH_REQUIRED', 'LK_NOT_LOGGED_IN', 'LK_UNAUTHORIZED']);

export function ConsentScreen({ app, uid }: { app: App; uid: string }) {
  const stage = useSignal<Stage>({ kind: 'loading' });
  useEffect(() => {
    stage.value = { kind: 'loading' };
    app.client.oauthInteraction(uid).then(
      (interaction) => {
        const session = app.session;
        stage.value =
          session?.isFresh() === true ? { kind: 'request', interaction, session } : { kind: 'login', interaction };
      },
      (error: unknown) => {
        stage.value = { kind: 'unavailable', error };
      },
    );
  }, [app, uid]);

  const current = stage.value;
  const leave = (interaction: OauthInteraction, redirectTo: string) => {
    stage.value = { kind: 'leaving', interaction };
    location.assign(redirectTo);
  };
  switch (current.kind) {
    case 'loading':
      return (
        <Panel title="Authorization request">
          <Feedback progress="Loading the request…" />
        </Panel>
      );
    case 'unavailable':
      return (
        <Panel title="This request cannot be shown">
          <Feedback error={current.error} />
          <p class="aside">Go back to the app and sign in from there again.</p>
        </Panel>
      );
    case 'login':
      return (
        <ConsentLogIn
          app={app}
          uid={uid}
          interaction={current.interaction}
          error={current.error}
          onSignedIn={(session) => {
            stage.value = { kind: 'request', interaction: current.interaction, session };
          }}
          onLeave={(redirectTo) => leave(current.interaction, redirectTo)}
        />
      );
    case 'request':
      return (
        <ConsentRequest
          uid={uid}
          interaction={current.interaction}
          session={current.session}
          onNeedsLogin={(error) => {
            if (error instanceof LatchkeyError && error.code === 'LK_UNAUTHORIZED') app.setSession(undefined);
            stage.value = { kind: 'login', interaction: current.interaction, error };
          }}
          onLeave={(redirectTo) => leave(current.interaction, redirectTo)}
        />
      );
    case 'leaving':
      return (
        <Panel title={`Returning to ${current.interaction.client.name}`}>
          <Feedback progress={`Taking you back to ${current.interaction.client.name}…`} />
        </Panel>
      );
  }
}

/**
 * Log-in on the consent page itself: the password is proved again on this tab's session when it is
 * the same account (a re-authentication: no second session), otherwise a new log-in replaces it.
 */
function ConsentLogIn(props: {
  app: App;
  uid: string;
  interaction: OauthInteraction;
  error: unknown;
  onSignedIn: (session: Session) => void;
  onLeave: (redirectTo: string) => void;
}) {
  const { app, interaction } = props;
  const email = useSignal(app.session?.state.email ?? app.pendingEmail);
  const password = useSignal('');
  const progress = useSignal<string | undefined>(undefined);
  const error = useSignal<unknown>(props.error);
  const busy = progress.value !== undefined;
  const form = useRef<HTMLFormElement>(null);
  // As the other short forms do: the first field still to fill takes the keyboard at once.
  useEffect(() => {
    [...(form.current?.querySelectorAll('input') ?? [])].find((input) => input.value === '')?.focus();
  }, []);

  const run = async (message: string, action: () => Promise<void>) => {
    clearMessages();
    error.value = undefined;
    progress.value = message;
    try {
      await nextPaint();
      await action();
    } catch (failure) {
      error.value = failure;
      progress.value = undefined;
    }
  };
  const logIn = () =>
    run(DERIVING, async () => {
      const session = await signIn(app, email.value, password.value);
      password.value = '';
      props.onSignedIn(session);
    });
  const cancel = () => run('Cancelling…', async () => props.onLeave(await app.client.refuseAuthorization(props.uid)));

  return (
    <Panel title={`Log in to continue to ${interaction.client.name}`}>
      <p class="aside">
        {interaction.client.name} asks for access to your Latchkey account. Log in to see what it asks for and decide.
      </p>
      <form
        ref={form}
        noValidate
        aria-busy={busy ? 'true' : undefined}
        onSubmit={(event) => {
          event.preventDefault();
          void logIn();
        }}
      >
        <Field label="Email" id="consent-email">
          <input
            id="consent-email"
            name="email"
            type="email"
            autocomplete="username"
            required
            value={email.value}
            disabled={busy}
            onInput={(event) => {
              email.value = event.currentTarget.value;
            }}
          />
        </Field>
        <Field label="Password" id="consent-password">
          <input
            id="consent-password"
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password.value}
            disabled={busy}
            onInput={(event) => {
              password.value = event.currentTarget.value;
            }}
          />
        </Field>
        <div class="form-end">
          <div class="button-row">
            <button type="submit" disabled={busy}>
              Log in and continue
            </button>
            <button type="button" class="secondary" disabled={busy} onClick={() => void cancel()}>
              Cancel
            </button>
          </div>
          <Feedback progress={progress.value} error={error.value} />
        </div>
      </form>
    </Panel>
  );
}

/** This browser's device token for `email`, from its last log-in here (login.ts keeps it the same way). */
const deviceTokenKey = (email: string) => `latchkey.deviceToken:${email.trim().toLowerCase()}`;

async function signIn(app: App, email: string, password: string): Promise<Session> {
  const current = app.session;
  if (current !== undefined && current.state.email === email.trim().toLowerCase()) {
    try {
      await current.reauthenticate(password);
      app.setSession(current);
      return current;
    } catch (error) {
      // A session ended elsewhere (expired, revoked) cannot be re-proved: a new log-in replaces it.
      if (!(error instanceof LatchkeyError && error.code === 'LK_UNAUTHORIZED')) throw error;
      app.setSession(undefined);
    }
  }
  const deviceToken = localStorage.getItem(deviceTokenKey(email)) ?? undefined;
  const session = await app.client.logIn(email, password, deviceToken === undefined ? {} : { deviceToken });
  if (session.state.deviceToken !== undefined) localStorage.setItem(deviceTokenKey(email), session.state.deviceToken);
  app.setSession(session);
  return session;
}

/** A labelled input: the `<label for>` is what screen readers announce and what tests find it by. */
function Field({ label, id, children }: { label: string; id: string; children: ComponentChildren }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
    </div>
  );
}

/** The request itself: the app, each scope with the key it would get, Allow and Deny. */
function ConsentRequest(props: {
  uid: string;
  interaction: OauthInteraction;
  session: Session;
  onNeedsLogin: (error: unknown) => void;
  onLeave: (redirectTo: string) => void;
}) {
  const { interaction, session } = props;
  const name = interaction.client.name;
  const progress = useSignal<string | undefined>(undefined);
  const error = useSignal<unknown>(undefined);
  const busy = progress.value !== undefined;
  const keyScopes = interaction.scopes.filter((entry) => entry.keyClass !== null).length;

  const run = async (message: string, action: () => Promise<string>) => {
    clearMessages();
    error.value = undefined;
    progress.value = message;
    try {
      await nextPaint();
      props.onLeave(await action());
    } catch (failure) {
      progress.value = undefined;
      if (failure instanceof LatchkeyError && NEEDS_LOGIN.has(failure.code)) props.onNeedsLogin(failure);
      else error.value = failure;
    }
  };
  const allow = () =>
    run(keyScopes > 0 ? `Making ${name}'s keys in this browser…` : 'Allowing…', () =>
      session.consentToAuthorization(props.uid),
    );
  const deny = () => run('Denying…', () => session.refuseAuthorization(props.uid));

  return (
    <Panel title={`Allow ${name}?`}>
      <p>
        <strong>{name}</strong> asks for access to the Latchkey account <strong>{session.state.email}</strong>:
      </p>
      <ul class="scopes" data-testid="consent-scopes">
        {interaction.scopes.map((entry) => (
          <ScopeItem key={entry.scope} entry={entry} />
        ))}
      </ul>
      {keyScopes > 0 ? (
        <p class="aside">
          Its keys are made in this browser and encrypted so that only {name} can read them; Latchkey's server cannot.
        </p>
      ) : null}
      <div class="form-end" aria-busy={busy ? 'true' : undefined}>
        <div class="button-row">
          <button type="button" disabled={busy} onClick={() => void allow()}>
            Allow
          </button>
          <button type="button" class="secondary" disabled={busy} onClick={() => void deny()}>
            Deny
          </button>
        </div>
        <Feedback progress={progress.value} error={error.value} />
      </div>
    </Panel>
  );
}

function ScopeItem({ entry }: { entry: OauthScopeRequest }) {
  return (
    <li data-scope={entry.scope} data-key-class={entry.keyClass ?? undefined}>
      <ScopeName scope={entry.scope} />
      {entry.keyClass === null ? null : (
        <>
          {' '}
          <span class="badge key-badge">
            {entry.keyClass === 'kA' ? 'gets an encryption key (survives password reset)' : 'gets an encryption key'}
          </span>
        </>
      )}
    </li>
  );
}

/** The interaction uid in a `#/oauth/consent/<uid>` hash, or `undefined` for any other route. */
export function consentUid(hash: string): string | undefined {
  const match = /^#\/oauth\/consent\/([^/?#]+)$/.exec(hash);
  if (match?.[1] === undefined) return undefined;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}

/** Draws the consent screen into the router's screen element (main.ts's hook until the Preact router). */
export function showConsentScreen(screen: HTMLElement, app: App, uid: string): void {
  clearMessages();
  screen.dataset.route = 'oauth/consent';
  document.title = 'Latchkey · authorize an app';
  render(<ConsentScreen key={uid} app={app} uid={uid} />, screen);
  window.scrollTo(0, 0);
}

/** Removes a Preact screen (unmounting it) before the old router draws into the same element. */
export function leavePreactScreen(screen: HTMLElement): void {
  render(null, screen);
  // And whatever the old router drew there, so Preact never adopts its elements.
  screen.replaceChildren();
}
