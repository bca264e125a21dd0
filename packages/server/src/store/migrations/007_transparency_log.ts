import type { Kysely } from 'kysely';
import type { ColumnTypes } from '../migrate.js';

/**
 * The server's transparency log (issue 10). Every batch of appends lands in one transaction: its leaves,
 * the full tiles they complete, and the checkpoint that signs the new tree. So the newest checkpoint's
 * size is always the number of leaves, and a crash leaves either the whole batch or none of it.
 * Leaf and tile indexes fit in a BIGINT as they must (below 2^53 by the tree's own rules).
 */
export async function up(db: Kysely<unknown>, t: ColumnTypes): Promise<void> {
  await db.schema
    .createTable('log_leaves')
    // The primary key is what makes two leaves at one index impossible, whatever a sequencer does.
    .addColumn('idx', t.time, (c) => c.primaryKey())
    .addColumn('entry', t.bytes, (c) => c.notNull())
    .addColumn('leaf_hash', t.bytes, (c) => c.notNull())
    .execute();

  // Full tiles only (256 hashes, immutable): served as one row, and their roots are the hashes of the
  // level above. Partial tiles are read from the rows below them, never stored.
  await db.schema
    .createTable('log_tiles')
    .addColumn('level', 'integer', (c) => c.notNull())
    .addColumn('idx', t.time, (c) => c.notNull())
    .addColumn('hashes', t.bytes, (c) => c.notNull())
    .addColumn('root', t.bytes, (c) => c.notNull())
    .addPrimaryKeyConstraint('log_tiles_pk', ['level', 'idx'])
    .execute();

  await db.schema
    .createTable('log_checkpoints')
    .addColumn('size', t.time, (c) => c.primaryKey())
    .addColumn('root_hash', t.bytes, (c) => c.notNull())
    // The signed note exactly as served (text, blank line, signature lines).
    .addColumn('note', 'text', (c) => c.notNull())
    .addColumn('created_at', t.time, (c) => c.notNull())
    .execute();
}
