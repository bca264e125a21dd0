import { LatchkeyError } from '@latchkey/client';
import { batch, signal } from '@preact/signals';
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';

/**
 * What the user reads for a failure: the SDK's sentence, or ours where its sentence speaks to a
 * developer (a URL, a token). The code is never part of the sentence; {@link ErrorNotice} keeps it apart.
 */
export function plainMessage(error: unknown): string {
  if (error instanceof LatchkeyError) {
    switch (error.code) {
      case 'LK_NETWORK':
        return 'The server could not be reached. Check your connection and try again.';
      case 'LK_UNAUTHORIZED':
        return 'Your session has ended. Log in again.';
      case 'LK_INTERNAL':
      case 'LK_SERVER_PROTOCOL':
        return 'Something went wrong on the server. Try again in a moment.';
      default:
        return error.message;
    }
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * A failure as a person reads it: the plain sentence first, then the stable `LK_*` code small and
 * muted for support (and in `data-code`, for tests and scripts), never in front of the sentence.
 */
export function ErrorNotice({ error }: { error: unknown }) {
  const code = error instanceof LatchkeyError ? error.code : undefined;
  return (
    <p class="notice notice-error" data-code={code}>
      <span class="message">{plainMessage(error)}</span>
      {code !== undefined && (
        <>
          {' '}
          <small class="error-code">Code for support: {code}</small>
        </>
      )}
    </p>
  );
}

/** The page's top regions: a failure of the whole screen, and the notice a new screen opens with. */
const pageAlert = signal<{ error: unknown } | undefined>(undefined);
const pageStatus = signal<string | undefined>(undefined);

/** Shows an error in the page's top `role="alert"` region: for a failure of the whole screen. */
export function showError(error: unknown): void {
  pageAlert.value = { error };
}

/** Shows a message in the page's top status region: the notice a new screen opens with. */
export function showStatus(message: string | undefined): void {
  pageStatus.value = message;
}

export function clearMessages(): void {
  batch(() => {
    pageAlert.value = undefined;
    pageStatus.value = undefined;
  });
}

/**
 * The page's top alert and status regions. They stay in the page while empty (hidden), so a screen
 * reader hears what is put into them.
 */
export function PageNotices() {
  const alert = pageAlert.value;
  const status = pageStatus.value;
  return (
    <>
      <div id="alert" class="notice notice-error" role="alert" hidden={alert === undefined}>
        {alert !== undefined && <ErrorNotice error={alert.error} />}
      </div>
      <div id="status" class="notice notice-info" role="status" aria-live="polite" hidden={status === undefined}>
        {status}
      </div>
    </>
  );
}

type Said =
  | { kind: 'progress'; message: string }
  | { kind: 'success'; message: ComponentChildren }
  | { kind: 'error'; error: unknown };

/**
 * A section's own messages, shown beside the action that caused them, where the user is looking:
 * progress and results in a polite live region, failures in an alert region ({@link FeedbackRegions}).
 */
export class Feedback {
  readonly said = signal<Said | undefined>(undefined);

  /** Work has started: a busy line. */
  progress(message: string): void {
    this.said.value = { kind: 'progress', message };
  }

  /** Work has finished well. */
  success(message: ComponentChildren): void {
    this.said.value = { kind: 'success', message };
  }

  /** Work has failed: the plain sentence, with the code apart. */
  error(error: unknown): void {
    this.said.value = { kind: 'error', error };
  }

  clear(): void {
    this.said.value = undefined;
  }

  /** The progress message showing now, if any. */
  get busy(): string | undefined {
    const said = this.said.peek();
    return said?.kind === 'progress' ? said.message : undefined;
  }
}

/** A component's own {@link Feedback}, kept for as long as it is shown. */
export function useFeedback(): Feedback {
  return useState(() => new Feedback())[0];
}

/**
 * Where a {@link Feedback} shows. Both regions stay in the page while empty (and take no room), so a
 * screen reader hears what is put into them.
 */
export function FeedbackRegions({ say }: { say: Feedback }) {
  const said = say.said.value;
  return (
    <div class="feedback" data-feedback="">
      <div role="status" aria-live="polite">
        {said?.kind === 'progress' && <p class="notice notice-progress">{said.message}</p>}
        {said?.kind === 'success' && <p class="notice notice-success">{said.message}</p>}
      </div>
      <div role="alert">{said?.kind === 'error' && <ErrorNotice error={said.error} />}</div>
    </div>
  );
}
