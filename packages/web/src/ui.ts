import { LatchkeyError } from '@latchkey/client';
import { clearMessages } from './notices.js';

/** The progress message while OPAQUE stretches the password with Argon2id (the slow part, on purpose). */
export const DERIVING = 'Deriving keys… (Argon2id runs in this tab and takes a moment)';

type Child = Node | string;
type Attributes = Record<string, string | boolean | undefined>;

/** Creates an element with attributes (booleans toggle, `undefined` skips) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) element.setAttribute(name, '');
    else if (typeof value === 'string') element.setAttribute(name, value);
  }
  element.append(...children);
  return element;
}

let nextId = 0;

/** A labelled input: the `<label for>` is what screen readers announce and what tests find it by. */
export function field(
  label: string,
  input: { name: string; type?: string; autocomplete?: string; value?: string; hint?: string; inputmode?: string },
): { row: HTMLElement; input: HTMLInputElement } {
  const id = `field-${input.name}-${++nextId}`;
  const hintId = input.hint === undefined ? undefined : `${id}-hint`;
  const element = h('input', {
    id,
    name: input.name,
    type: input.type ?? 'text',
    autocomplete: input.autocomplete,
    inputmode: input.inputmode,
    required: true,
    'aria-describedby': hintId,
  });
  if (input.value !== undefined) element.value = input.value;
  const row = h('div', { class: 'field' }, h('label', { for: id }, label), element);
  if (hintId !== undefined && input.hint !== undefined) row.append(h('small', { id: hintId }, input.hint));
  return { row, input: element };
}

/** A card with a heading, what every screen is drawn in. */
export function panel(title: string, ...children: Child[]): HTMLElement {
  const id = `panel-${++nextId}`;
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

/**
 * What the user reads for a failure: the SDK's sentence, or ours where its sentence speaks to a
 * developer (a URL, a token). The code is never part of the sentence; {@link errorNotice} keeps it apart.
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
export function errorNotice(error: unknown): HTMLElement {
  const notice = h('p', { class: 'notice notice-error' }, h('span', { class: 'message' }, plainMessage(error)));
  if (error instanceof LatchkeyError) {
    notice.dataset.code = error.code;
    notice.append(' ', h('small', { class: 'error-code' }, `Code for support: ${error.code}`));
  }
  return notice;
}

// The page's notices are the Preact app's (notices.tsx); the screens not yet components use them too.
export { clearMessages, showError, showStatus } from './notices.js';

/**
 * A section's own messages, shown beside the action that caused them, where the user is looking:
 * progress and results in a polite live region, failures in an alert region. Both stay in the page
 * while empty (and take no room), so a screen reader hears what is put into them.
 */
export interface Feedback {
  readonly element: HTMLElement;
  /** Work has started: a busy line. */
  progress(message: string): void;
  /** Work has finished well. */
  success(message: Child): void;
  /** Work has failed: the plain sentence, with the code apart. */
  error(error: unknown): void;
  clear(): void;
  /** The progress message showing now, if any. */
  readonly busy: string | undefined;
}

export function feedback(): Feedback {
  const status = h('div', { role: 'status', 'aria-live': 'polite' });
  const alert = h('div', { role: 'alert' });
  const element = h('div', { class: 'feedback', 'data-feedback': '' }, status, alert);
  let busy: string | undefined;
  const put = (region: HTMLElement, content: HTMLElement | undefined) => {
    region.replaceChildren(...(content === undefined ? [] : [content]));
  };
  const say: Feedback = {
    element,
    progress(message) {
      busy = message;
      put(alert, undefined);
      put(status, h('p', { class: 'notice notice-progress' }, message));
    },
    success(message) {
      busy = undefined;
      put(alert, undefined);
      put(status, h('p', { class: 'notice notice-success' }, message));
    },
    error(error) {
      busy = undefined;
      put(status, undefined);
      put(alert, errorNotice(error));
    },
    clear() {
      busy = undefined;
      put(status, undefined);
      put(alert, undefined);
    },
    get busy() {
      return busy;
    },
  };
  return say;
}

/**
 * Runs one user action: disables the scope's controls, shows `progress` in `say` (the action's own
 * feedback, beside it), and reports a failure there. OPAQUE's Argon2id runs on the main thread inside
 * the SDK, so we let the browser paint the progress message before starting; otherwise it would
 * appear only after the work is done.
 */
export async function runAction(
  scope: HTMLElement,
  say: Feedback,
  progress: string,
  action: () => Promise<void>,
): Promise<void> {
  clearMessages();
  say.progress(progress);
  const controls = [...scope.querySelectorAll<HTMLInputElement | HTMLButtonElement>('input, button')];
  for (const control of controls) control.disabled = true;
  scope.setAttribute('aria-busy', 'true');
  try {
    await nextPaint();
    await action();
    if (say.busy === progress) say.clear();
  } catch (error) {
    say.error(error);
  } finally {
    for (const control of controls) control.disabled = false;
    scope.removeAttribute('aria-busy');
  }
}

function nextPaint(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

/**
 * A form whose submit runs `action` through {@link runAction}; its messages show beside its button.
 * `action` gets that feedback to report a result or a further step.
 */
export function form(
  submitLabel: string,
  progress: string,
  rows: HTMLElement[],
  action: (say: Feedback) => Promise<void>,
): HTMLFormElement {
  const say = feedback();
  const element = h(
    'form',
    { novalidate: true },
    ...rows,
    h('div', { class: 'form-end' }, h('button', { type: 'submit' }, submitLabel), say.element),
  );
  element.addEventListener('submit', (event) => {
    event.preventDefault();
    void runAction(element, say, progress, () => action(say));
  });
  return element;
}

/** A link to another screen. */
export function link(route: string, text: string): HTMLAnchorElement {
  return h('a', { href: `#/${route}` }, text);
}

/** Checks that two password entries match before any key is derived. */
export function requireSame(password: string, confirmation: string): void {
  if (password !== confirmation) throw new Error('The two passwords do not match.');
}

/**
 * Saves `text` as a file through the browser's download: a Blob behind an `<a download>`, so the text
 * goes from this tab to the disk and never through the server.
 */
export function download(filename: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  const anchor = h('a', { href: url, download: filename, hidden: true });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  // Revoking at once can cancel a download Chrome has not started reading yet (FileSaver.js waits 40 s).
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/** A checkbox with its label after it, the usual reading order for a statement to tick. */
export function checkbox(label: string, name: string, checked = false): { row: HTMLElement; input: HTMLInputElement } {
  const id = `field-${name}-${++nextId}`;
  const input = h('input', { id, name, type: 'checkbox', checked });
  return { row: h('div', { class: 'check' }, input, h('label', { for: id }, label)), input };
}

/** A count for people: digit groups in the reader's locale. */
export function count(n: number): string {
  return n.toLocaleString();
}

/** A timestamp (ms) as a short local date and time. */
export function when(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
