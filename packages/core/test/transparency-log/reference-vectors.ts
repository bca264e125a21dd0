import { loadVectors } from '../vector-files.js';

/** packages/core/vectors/rfc6962-reference.json: the reference's tree of eight leaves, as typed data. */
export interface ReferenceVectors {
  source: string;
  leaves: string[];
  nodes: Record<string, string>;
  roots: string[];
  inclusion: { index: number; size: number; path: string[] }[];
  consistency: { size1: number; size2: number; path: string[] }[];
  hasher: {
    function: 'leafHash' | 'nodeHash';
    inputUtf8?: string;
    leftUtf8?: string;
    rightUtf8?: string;
    hashHex: string;
  }[];
}

export const reference = loadVectors<never>('rfc6962-reference.json') as unknown as ReferenceVectors;
