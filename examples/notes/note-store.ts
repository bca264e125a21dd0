import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The notes backend's whole database: one JSON file holding, per Latchkey account (`sub`), one opaque
 * ciphertext that the browser made. The backend never has the key, so it cannot read what it keeps.
 *
 * Each write goes to a fresh file that is flushed to disk and then renamed over the old one, so a
 * crash leaves either the old file or the new one, never half of one; and the in-memory copy changes
 * only once the new file is in place. Writes run one at a time.
 */
export class NoteStore {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private notes: Readonly<Record<string, string>>,
  ) {}

  /** Opens the file at `file`, or starts an empty store there (the directory is made if missing). */
  static async open(file: string): Promise<NoteStore> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    return new NoteStore(file, text === undefined ? {} : parseNotesFile(text, file));
  }

  /** The ciphertext kept for `sub`, if any. */
  get(sub: string): string | undefined {
    return Object.hasOwn(this.notes, sub) ? this.notes[sub] : undefined;
  }

  /** Replaces `sub`'s ciphertext; resolves once it is on disk. */
  put(sub: string, ciphertext: string): Promise<void> {
    const next = this.writing.then(() => this.write({ ...this.notes, [sub]: ciphertext }));
    // A failed write fails its own caller only; the next write starts from what is on disk.
    this.writing = next.catch(() => undefined);
    return next;
  }

  private async write(notes: Record<string, string>): Promise<void> {
    const temporary = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      const handle = await open(temporary, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify({ version: 1, notes }));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, this.file);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    this.notes = notes;
  }
}

function parseNotesFile(text: string, file: string): Record<string, string> {
  const parsed = JSON.parse(text) as { version?: unknown; notes?: unknown };
  const notes = parsed.notes;
  const valid =
    parsed.version === 1 &&
    typeof notes === 'object' &&
    notes !== null &&
    Object.values(notes).every((value) => typeof value === 'string');
  if (!valid) throw new Error(`${file} is not a notes file (version 1)`);
  // A null prototype: an account id such as `__proto__` is then just a key.
  return Object.assign(Object.create(null) as Record<string, string>, notes);
}
