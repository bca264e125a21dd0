import { type ReadonlySignal, type Signal, signal, untracked, useComputed, useSignal } from '@preact/signals';
import { type ButtonHTMLAttributes, type ComponentChildren, createContext, type Ref } from 'preact';
import { useContext, useId } from 'preact/hooks';
import type { App } from './app.js';
import { clearMessages, type Feedback, FeedbackRegions, useFeedback } from './notices.js';

/**
 * A part of the page where user actions run: true while one runs. Its controls are disabled meanwhile
 * (so an action cannot be started twice), and so are those of every scope inside it.
 */
export type Scope = Signal<boolean>;

export function useScope(): Scope {
  return useSignal(false);
}

/** Whether the controls here must wait: an action runs in this scope or one around it. */
const BusyContext = createContext<ReadonlySignal<boolean>>(signal(false));

/** Marks its children as inside `scope`: their {@link Button}s and fields are disabled while it is busy. */
export function Busy({ scope, children }: { scope: Scope; children: ComponentChildren }) {
  const outer = useContext(BusyContext);
  const busy = useComputed(() => outer.value || scope.value);
  return <BusyContext.Provider value={busy}>{children}</BusyContext.Provider>;
}

function useBusy(): boolean {
  return useContext(BusyContext).value;
}

/** `aria-busy` for a scope's element, for assistive technology and the progress cursor in style.css. */
export function ariaBusy(scope: Scope): 'true' | undefined {
  return scope.value ? 'true' : undefined;
}

/**
 * Runs one user action: disables the scope's controls, shows `progress` in `say` (the action's own
 * feedback, beside it), and reports a failure there. OPAQUE's Argon2id runs on the main thread inside
 * the SDK, so we let the browser paint the progress message before starting; otherwise it would
 * appear only after the work is done.
 */
export async function runAction(
  scope: Scope,
  say: Feedback,
  progress: string,
  action: () => Promise<void>,
): Promise<void> {
  // Its controls are disabled at the next render: a second click before it is not a second run.
  if (scope.peek()) return;
  clearMessages();
  say.progress(progress);
  scope.value = true;
  try {
    await nextPaint();
    await action();
    if (say.busy === progress) say.clear();
  } catch (error) {
    say.error(error);
  } finally {
    scope.value = false;
  }
}

function nextPaint(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

type ButtonProps = Omit<ButtonHTMLAttributes<HTMLButtonElement>, 'disabled' | 'type'> & {
  type?: 'button' | 'submit';
  disabled?: boolean;
  buttonRef?: Ref<HTMLButtonElement>;
};

/** A button that waits while an action runs around it ({@link Busy}). */
export function Button({ type = 'button', disabled = false, buttonRef, ...props }: ButtonProps) {
  const busy = useBusy();
  return <button {...props} ref={buttonRef ?? null} type={type} disabled={busy || disabled} />;
}

export interface FieldProps {
  label: string;
  name: string;
  type?: 'text' | 'email' | 'password' | 'file';
  autocomplete?: string;
  inputMode?: string;
  /** A sentence under the field, read out with it (`aria-describedby`). */
  hint?: string;
  defaultValue?: string;
  required?: boolean;
  maxLength?: number;
  accept?: string;
  spellcheck?: boolean;
  class?: string;
  hidden?: boolean;
  inputRef: Ref<HTMLInputElement>;
}

/**
 * A labelled input: the `<label for>` is what screen readers announce and what tests find it by. Its
 * value stays in the input (read through `inputRef` when the form is sent), so a password is nowhere else.
 */
export function Field({ label, name, type = 'text', hint, required = true, hidden, inputRef, ...input }: FieldProps) {
  const id = `field-${name}-${useId()}`;
  const hintId = hint === undefined ? undefined : `${id}-hint`;
  const busy = useBusy();
  return (
    <div class="field" hidden={hidden}>
      <label for={id}>{label}</label>
      <input
        {...input}
        id={id}
        ref={inputRef}
        name={name}
        // Preact's types pair each input type with attributes of its own; these are common to all four.
        type={type as 'text'}
        required={required}
        aria-describedby={hintId}
        disabled={busy}
      />
      {hint !== undefined && <small id={hintId}>{hint}</small>}
    </div>
  );
}

/** The email field the account forms start with, offering the email the previous screen carried. */
export function EmailField({ app, inputRef }: { app: App; inputRef: Ref<HTMLInputElement> }) {
  return (
    <Field
      label="Email"
      name="email"
      type="email"
      autocomplete="username"
      defaultValue={untracked(() => app.pendingEmail)}
      inputRef={inputRef}
    />
  );
}

/** A checkbox with its label after it, the usual reading order for a statement to tick. */
export function Checkbox(props: {
  label: string;
  name: string;
  defaultChecked?: boolean;
  inputRef?: Ref<HTMLInputElement>;
  onChange?: (checked: boolean) => void;
}) {
  const id = `field-${props.name}-${useId()}`;
  const busy = useBusy();
  return (
    <div class="check">
      <input
        id={id}
        ref={props.inputRef ?? null}
        name={props.name}
        type="checkbox"
        defaultChecked={props.defaultChecked ?? false}
        disabled={busy}
        onChange={(event) => props.onChange?.(event.currentTarget.checked)}
      />
      <label for={id}>{props.label}</label>
    </div>
  );
}

/**
 * A card with a heading, what every screen is drawn in; named by its heading, so it is a region. With
 * a `scope`, it is where that scope's actions run.
 */
export function Panel(props: { title: string; scope?: Scope; hidden?: boolean; children?: ComponentChildren }) {
  const id = `panel-${useId()}`;
  const section = (
    <section
      class="panel"
      aria-labelledby={id}
      hidden={props.hidden}
      aria-busy={props.scope === undefined ? undefined : ariaBusy(props.scope)}
    >
      <h2 id={id}>{props.title}</h2>
      {props.children}
    </section>
  );
  return props.scope === undefined ? section : <Busy scope={props.scope}>{section}</Busy>;
}

/**
 * A form whose submit runs `action` through {@link runAction}; its messages show beside its button.
 * `action` gets that feedback to report a result or a further step.
 */
export function ActionForm(props: {
  submit: string;
  progress: string;
  action: (say: Feedback) => Promise<void>;
  class?: string;
  children: ComponentChildren;
}) {
  const scope = useScope();
  const say = useFeedback();
  const submit = (event: SubmitEvent) => {
    event.preventDefault();
    void runAction(scope, say, props.progress, () => props.action(say));
  };
  return (
    <Busy scope={scope}>
      <form noValidate class={props.class} aria-busy={ariaBusy(scope)} onSubmit={submit}>
        {props.children}
        <div class="form-end">
          <Button type="submit">{props.submit}</Button>
          <FeedbackRegions say={say} />
        </div>
      </form>
    </Busy>
  );
}

/** A link to another screen. */
export function Link({ route, children }: { route: string; children: ComponentChildren }) {
  return <a href={`#/${route}`}>{children}</a>;
}

/** The text in a field now (an input not yet drawn reads as empty). */
export function textIn(input: { current: HTMLInputElement | null }): string {
  return input.current?.value ?? '';
}
