import type { TestProject } from 'vitest/node';
import { startPostgres } from './support/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the run's one PostgreSQL cluster; make a database with `createTestDatabase`. */
    postgresUrl: string;
  }
}

/**
 * Starts ONE PostgreSQL cluster for the whole run (starting one per file would cost each file an
 * initdb) and hands its URL to every test file through `inject('postgresUrl')`.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startPostgres();
  project.provide('postgresUrl', cluster.url);
  return () => cluster.stop();
}
