import { LatchkeyError } from '@latchkey/client';
import type { ComponentChildren } from 'preact';
import { useId } from 'preact/hooks';
import { plainMessage } from './ui.js';

/**
 * What the OAuth screens (issue 9) share: the app's panel and message styles (ui.ts's panel,
 * errorNotice and feedback) as Preact components, with the same markup, so the same CSS and the same
 * tests find them; and scope names as people read them.
 */

/** A card with a heading: a region named by it, as ui.ts's panel. */
export function Panel({ title, children }: { title: string; children?: ComponentChildren }) {
  const id = useId();
  return (
    <section class="panel" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

/** A failure as ui.ts's errorNotice draws it: the plain sentence, and the `LK_*` code apart (and in data-code). */
export function ErrorNotice({ error }: { error: unknown }) {
  const code = error instanceof LatchkeyError ? error.code : undefined;
  return (
    <p class="notice notice-error" data-code={code}>
      <span class="message">{plainMessage(error)}</span>
      {code === undefined ? null : (
        <>
          {' '}
          <small class="error-code">Code for support: {code}</small>
        </>
      )}
    </p>
  );
}

/**
 * An action's messages beside it, as ui.ts's feedback: progress in a polite status region, a failure
 * in an alert region; both stay in the page while empty, so a screen reader hears what comes into them.
 */
export function Feedback({ progress, error }: { progress?: string | undefined; error?: unknown }) {
  return (
    <div class="feedback" data-feedback="">
      <div role="status" aria-live="polite">
        {progress === undefined ? null : <p class="notice notice-progress">{progress}</p>}
      </div>
      <div role="alert">{error === undefined ? null : <ErrorNotice error={error} />}</div>
    </div>
  );
}

/** Lets the browser paint a progress message before main-thread work (Argon2id, key derivation) starts. */
export function nextPaint(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

/** Names people read for the protocol's own scopes; an app's scopes show as registered. */
const SCOPE_NAMES: Record<string, string> = {
  openid: 'Know who you are (your account ID)',
  offline_access: 'Stay signed in when you are away',
};

export function ScopeName({ scope }: { scope: string }) {
  const name = SCOPE_NAMES[scope];
  return name === undefined ? <code>{scope}</code> : name;
}
