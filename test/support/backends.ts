import type { ServerConfig } from '@latchkey/server';
import { inject } from 'vitest';
import { createTestDatabase } from './postgres.js';

/** The two storage backends every server suite runs on: one storage interface, one test suite. */
export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

/**
 * The database setting of a test server on `backend`: a fresh PostgreSQL database (named from
 * `prefix`) on the cluster the global set-up started, or nothing, which leaves startTestServer's own
 * fresh SQLite file.
 */
export async function databaseOn(
  backend: Backend,
  prefix: string,
): Promise<Partial<Pick<ServerConfig, 'databaseUrl'>>> {
  return backend === 'postgres' ? { databaseUrl: await createTestDatabase(inject('postgresUrl'), prefix) } : {};
}
