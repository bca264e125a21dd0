/** The progress message while OPAQUE stretches the password with Argon2id (the slow part, on purpose). */
export const DERIVING = 'Deriving keys… (Argon2id runs in this tab and takes a moment)';

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
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.download = filename;
  anchor.hidden = true;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  // Revoking at once can cancel a download Chrome has not started reading yet (FileSaver.js waits 40 s).
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/** A count for people: digit groups in the reader's locale. */
export function count(n: number): string {
  return n.toLocaleString();
}

/** A timestamp (ms) as a short local date and time. */
export function when(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
