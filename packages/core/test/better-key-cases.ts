import type { BackupKeyRank } from '@latchkey/core';

/**
 * The spec's "better key" order (spec "Server-side key backups"; MSC1219), compared lexicographically:
 * verified first, then the lower first_message_index, then the lower forwarded_count; a tie keeps the
 * stored key. One row per branch, each in both directions; shared by the core rule's test and the
 * keystore's, which must keep the same copy as the backup would.
 */
const rank = (is_verified: boolean, first_message_index: number, forwarded_count: number): BackupKeyRank => ({
  is_verified,
  first_message_index,
  forwarded_count,
});

export const BETTER_KEY_CASES: [why: string, candidate: BackupKeyRank, existing: BackupKeyRank, replaces: boolean][] = [
  // Branch 1: verification decides before anything else, both ways.
  ['verified beats unverified, though its index and forwards are worse', rank(true, 9, 5), rank(false, 0, 0), true],
  [
    'unverified loses to verified, though its index and forwards are better',
    rank(false, 0, 0),
    rank(true, 9, 5),
    false,
  ],
  // Branch 2: same verification, the lower first_message_index wins, whatever the forwards.
  ['a lower index wins, though forwarded more (verified)', rank(true, 3, 7), rank(true, 4, 0), true],
  ['a lower index wins, though forwarded more (unverified)', rank(false, 0, 1), rank(false, 1, 0), true],
  ['a higher index loses, though forwarded less (Synapse lets it win)', rank(true, 4, 0), rank(true, 3, 7), false],
  // Branch 3: same verification and index, the lower forwarded_count wins.
  ['fewer forwards win at an equal index', rank(false, 2, 0), rank(false, 2, 1), true],
  ['more forwards lose at an equal index', rank(true, 2, 1), rank(true, 2, 0), false],
  // Branch 4: a tie keeps what is stored.
  ['a tie keeps the stored key (verified)', rank(true, 5, 2), rank(true, 5, 2), false],
  ['a tie keeps the stored key (unverified)', rank(false, 0, 0), rank(false, 0, 0), false],
];
