import { loadVectors } from '../vector-files.js';

/** packages/core/vectors/c2sp-signed-notes.json, typed. */
export interface NoteVectors {
  source: string;
  verify: { name: string; vkey: string; note: string; text: string }[];
  sign: { name: string; skey: string; vkey: string; text: string; note: string }[];
  cosignerKeys: { name: string; vkey: string; keyName: string; keyIdHex: string }[];
  cosignatureTimes: { name: string; signatureBase64: string; time: number }[];
  checkpoints: {
    name: string;
    note: string;
    origin: string;
    size: number;
    rootBase64: string;
    cosignedMessage: string;
  }[];
}

export const noteVectors = loadVectors<never>('c2sp-signed-notes.json') as unknown as NoteVectors;

/** A fixed 32-byte seed per label, so tests are deterministic (not a secret anywhere). */
export function testSeed(label: string): Uint8Array {
  const seed = new Uint8Array(32);
  const bytes = new TextEncoder().encode(label);
  for (let i = 0; i < 32; i++) seed[i] = (bytes[i % bytes.length] as number) ^ (i * 37);
  return seed;
}
