import { LatchkeyError } from '@latchkey/core';
import { loadCiphertext, loadConfig, saveCiphertext } from './api.js';
import { KeyValueDb } from './idb.js';
import { openNote, sealNote } from './note-crypto.js';
import { beginSignIn, completeSignIn, currentSession, isCallback, type NotesSession, signOut } from './sign-in.js';

/** The page: signed out, a sign-in button; signed in, the note, decrypted here and saved encrypted. */

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const alertBox = element<HTMLDivElement>('alert');
const status = element<HTMLParagraphElement>('status');
const noteField = element<HTMLTextAreaElement>('note');

function showStatus(text: string): void {
  status.textContent = text;
}

/** The sentence for the user: the SDK's, or a plainer one where its own is written for developers. */
function sentenceFor(error: LatchkeyError): string {
  if (error.code === 'LK_OAUTH_ERROR' && error.details?.error === 'access_denied') {
    return 'You did not allow Notes on Latchkey, so nothing was shared. Sign in again to allow it.';
  }
  return error.message;
}

/** Shows an error with its stable code kept apart from the sentence (`data-code`), as Latchkey's web app does. */
function showError(error: unknown): void {
  const known = error instanceof LatchkeyError ? error : new LatchkeyError('LK_INTERNAL');
  if (!(error instanceof LatchkeyError)) console.error(error);
  const line = document.createElement('p');
  line.dataset.code = known.code;
  const message = document.createElement('span');
  message.className = 'message';
  message.textContent = sentenceFor(known);
  const code = document.createElement('code');
  code.textContent = known.code;
  line.append(message, ' ', code);
  alertBox.replaceChildren(line);
  alertBox.hidden = false;
}

function clearError(): void {
  alertBox.replaceChildren();
  alertBox.hidden = true;
}

function showSignedIn(signedIn: boolean): void {
  element('signed-in').hidden = !signedIn;
  element('signed-out').hidden = signedIn;
}

/** Runs a button's action with the button disabled, showing any error. */
function onClick(id: string, action: () => Promise<void>): void {
  const button = element<HTMLButtonElement>(id);
  button.addEventListener('click', async () => {
    button.disabled = true;
    clearError();
    try {
      await action();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
}

/** Loads and decrypts the user's note; a token the backend no longer takes signs the page out. */
async function showNote(db: KeyValueDb, session: NotesSession): Promise<void> {
  let stored: string | null;
  try {
    stored = await loadCiphertext(session.accessToken);
  } catch (error) {
    if (error instanceof LatchkeyError && error.code === 'LK_UNAUTHORIZED') {
      await signOut(db);
      showSignedIn(false);
    }
    throw error;
  }
  noteField.value = stored === null ? '' : await openNote(session.noteKey, session.sub, stored);
  showSignedIn(true);
  showStatus(stored === null ? 'Signed in. No note yet: write one and save it.' : 'Your note, decrypted in this page.');
}

async function start(): Promise<void> {
  const db = await KeyValueDb.open();
  const config = await loadConfig();
  let session: NotesSession | undefined;

  onClick('sign-in', async () => {
    showStatus('Going to Latchkey…');
    location.assign(await beginSignIn(config, db));
  });
  onClick('save', async () => {
    if (session === undefined) return;
    await saveCiphertext(session.accessToken, await sealNote(session.noteKey, session.sub, noteField.value));
    showStatus('Saved, encrypted.');
  });
  onClick('sign-out', async () => {
    await signOut(db);
    session = undefined;
    noteField.value = '';
    showSignedIn(false);
    showStatus('Signed out: this browser no longer holds the note key.');
  });

  const here = new URL(location.href);
  if (isCallback(here)) {
    // The code and state leave the address bar (and history) whatever happens next.
    history.replaceState(null, '', '/');
    showStatus('Finishing sign-in…');
    session = await completeSignIn(config, db, here);
  } else {
    session = await currentSession(db);
  }
  if (session === undefined) {
    showSignedIn(false);
    showStatus('Signed out.');
    return;
  }
  await showNote(db, session);
}

start().catch((error: unknown) => {
  if (element('signed-in').hidden) showSignedIn(false);
  showError(error);
});
