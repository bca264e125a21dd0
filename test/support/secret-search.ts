import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Secret {
  name: string;
  bytes: Uint8Array;
}

export interface SecretHit {
  secret: string;
  encoding: string;
  file: string;
}

/** Every spelling of a secret that a careless server might store: raw, hex, base64 and base64url. */
export function spellings(bytes: Uint8Array): Array<{ encoding: string; needle: Buffer }> {
  const b = Buffer.from(bytes);
  const b64 = b.toString('base64');
  return [
    { encoding: 'raw', needle: b },
    { encoding: 'hex', needle: Buffer.from(b.toString('hex')) },
    { encoding: 'HEX', needle: Buffer.from(b.toString('hex').toUpperCase()) },
    { encoding: 'base64', needle: Buffer.from(b64) },
    { encoding: 'base64-unpadded', needle: Buffer.from(b64.replace(/=+$/, '')) },
    { encoding: 'base64url', needle: Buffer.from(b.toString('base64url')) },
  ];
}

function filesUnder(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path).flatMap((entry) => {
    const full = join(path, entry);
    const stat = statSync(full, { throwIfNoEntry: false });
    if (stat === undefined) return [];
    return stat.isDirectory() ? filesUnder(full) : stat.isFile() ? [full] : [];
  });
}

/** Searches every file under `root` (a file or a directory tree) for every spelling of every secret. */
export function findSecrets(root: string, secrets: Secret[]): SecretHit[] {
  const hits: SecretHit[] = [];
  for (const file of filesUnder(root)) {
    const content = readFileSync(file);
    for (const secret of secrets) {
      for (const { encoding, needle } of spellings(secret.bytes)) {
        if (content.includes(needle)) hits.push({ secret: secret.name, encoding, file });
      }
    }
  }
  return hits;
}

/** How many files and bytes a search covered, so a test can show it searched something real. */
export function searchedSize(root: string): { files: number; bytes: number } {
  const files = filesUnder(root);
  return { files: files.length, bytes: files.reduce((n, f) => n + statSync(f).size, 0) };
}
