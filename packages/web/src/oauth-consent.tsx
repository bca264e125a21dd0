import { LatchkeyError, type OauthInteraction, type OauthScopeRequest, type Session } from '@latchkey/client';
import { untracked, useSignal } from '@preact/signals';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { App } from './app.js';
import { ariaBusy, Busy, Button, Field, Panel, runAction, textIn, useScope } from './controls.js';
import { DERIVING } from './format.js';
import { Feedback, FeedbackRegions, useFeedback } from './notices.js';
import { ScopeName } from './oauth-scopes.js';

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
  // The messages of the stages without a form of their own: loading, unavailable, leaving.
  const say = useFeedback();
  useEffect(() => {
    stage.value = { kind: 'loading' };
    say.progress('Loading the request…');
    app.client.oauthInteraction(uid).then(
      (interaction) => {
        say.clear();
        const session = app.session;
        stage.value =
          session?.isFresh() === true ? { kind: 'request', interaction, session } : { kind: 'login', interaction };
      },
      (error: unknown) => {
        say.error(error);
        stage.value = { kind: 'unavailable', error };
      },
    );
  }, [app, uid]);

  const current = stage.value;
  const leave = (interaction: OauthInteraction, redirectTo: string) => {
    say.progress(`Taking you back to ${interaction.client.name}…`);
    stage.value = { kind: 'leaving', interaction };
    location.assign(redirectTo);
  };
  switch (current.kind) {
    case 'loading':
      return (
        <Panel title="Authorization request">
          <FeedbackRegions say={say} />
        </Panel>
      );
    case 'unavailable':
      return (
        <Panel title="This request cannot be shown">
          <FeedbackRegions say={say} />
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
          <FeedbackRegions say={say} />
        </Panel>
      );
  }
}

/** A feedback that opens showing `error` (why the page asks to log in again), if there is one. */
function useFeedbackWith(error: unknown): Feedback {
  return useState(() => {
    const say = new Feedback();
    if (error !== undefined) say.error(error);
    return say;
  })[0];
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
  const email = useRef<HTMLInputElement>(null);
  const password = useRef<HTMLInputElement>(null);
  const form = useRef<HTMLFormElement>(null);
  const scope = useScope();
  const say = useFeedbackWith(props.error);
  // As the other short forms do: the first field still to fill takes the keyboard at once (the
  // router's focus ran while the request was loading, before this form was drawn).
  useEffect(() => {
    [...(form.current?.querySelectorAll('input') ?? [])].find((input) => input.value === '')?.focus();
  }, []);

  const logIn = () =>
    runAction(scope, say, DERIVING, async () => {
      props.onSignedIn(await signIn(app, textIn(email), textIn(password)));
    });
  const cancel = () =>
    runAction(scope, say, 'Cancelling…', async () => props.onLeave(await app.client.refuseAuthorization(props.uid)));

  return (
    <Panel title={`Log in to continue to ${interaction.client.name}`} scope={scope}>
      <p class="aside">
        {interaction.client.name} asks for access to your Latchkey account. Log in to see what it asks for and decide.
      </p>
      <form
        ref={form}
        noValidate
        aria-busy={ariaBusy(scope)}
        onSubmit={(event) => {
          event.preventDefault();
          void logIn();
        }}
      >
        <Field
          label="Email"
          name="email"
          type="email"
          autocomplete="username"
          defaultValue={untracked(() => app.session?.state.email ?? app.pendingEmail)}
          inputRef={email}
        />
        <Field label="Password" name="password" type="password" autocomplete="current-password" inputRef={password} />
        <div class="form-end">
          <div class="button-row">
            <Button type="submit">Log in and continue</Button>
            <Button class="secondary" onClick={() => void cancel()}>
              Cancel
            </Button>
          </div>
          <FeedbackRegions say={say} />
        </div>
      </form>
    </Panel>
  );
}

/** This browser's device token for `email`, from its last log-in here (login.tsx keeps it the same way). */
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
  const scope = useScope();
  const say = useFeedback();
  const keyScopes = interaction.scopes.filter((entry) => entry.keyClass !== null).length;

  /** Runs Allow or Deny, then leaves for where the server sends the browser back to the app. */
  const decide = (progress: string, decision: () => Promise<string>) =>
    runAction(scope, say, progress, async () => {
      let redirectTo: string;
      try {
        redirectTo = await decision();
      } catch (failure) {
        // Not this request's failure: the password must be proved again first.
        if (failure instanceof LatchkeyError && NEEDS_LOGIN.has(failure.code)) return props.onNeedsLogin(failure);
        throw failure;
      }
      props.onLeave(redirectTo);
    });
  const allow = () =>
    decide(keyScopes > 0 ? `Making ${name}'s keys in this browser…` : 'Allowing…', () =>
      session.consentToAuthorization(props.uid),
    );
  const deny = () => decide('Denying…', () => session.refuseAuthorization(props.uid));

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
      {keyScopes > 0 && (
        <p class="aside">
          Its keys are made in this browser and encrypted so that only {name} can read them; Latchkey's server cannot.
        </p>
      )}
      <Busy scope={scope}>
        <div class="form-end" aria-busy={ariaBusy(scope)}>
          <div class="button-row">
            <Button onClick={() => void allow()}>Allow</Button>
            <Button class="secondary" onClick={() => void deny()}>
              Deny
            </Button>
          </div>
          <FeedbackRegions say={say} />
        </div>
      </Busy>
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
