import { LatchkeyError } from '@latchkey/core';
import type { FastifyRequest } from 'fastify';

/** Deeper than any request of ours (a backup upload is 6 levels); JSON.stringify recurses, so depth is bounded. */
export const MAX_JSON_DEPTH = 32;

/** In Unicode mode a surrogate pair is one code point, so only a lone surrogate is in category Cs. */
const LONE_SURROGATE = /\p{Cs}/u;

/** U+0000 (PostgreSQL text cannot hold it) or a lone surrogate (not encodable as UTF-8 at all). */
const unstorable = (text: string) => text.includes('\u0000') || LONE_SURROGATE.test(text);

/**
 * A preValidation hook for every route: refuses, with `LK_VALIDATION`, text that one of our databases
 * cannot store as sent (the same request must behave alike on SQLite and PostgreSQL), and JSON nested
 * deeper than {@link MAX_JSON_DEPTH}, which would overflow the stack of whatever serialises it next.
 * JSON.parse itself is iterative, so a deep body arrives intact; the walk below is iterative too.
 */
export async function rejectUnstorableInput(request: FastifyRequest): Promise<void> {
  const pending: [unknown, number, string][] = [
    [request.params, 0, 'params'],
    [request.query, 0, 'querystring'],
    [request.body, 0, 'body'],
  ];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [value, depth, where] = next;
    if (typeof value === 'string') {
      if (unstorable(value)) throw new LatchkeyError('LK_VALIDATION', `${where} holds U+0000 or a lone surrogate.`);
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_JSON_DEPTH) throw new LatchkeyError('LK_VALIDATION', `${where} is nested too deeply.`);
    for (const [key, inner] of Object.entries(value)) {
      pending.push([key, depth, where], [inner, depth + 1, where]);
    }
  }
}
