/** The ranking facts of one backed-up room key (spec `KeyBackupData`). */
export interface BackupKeyRank {
  is_verified: boolean;
  first_message_index: number;
  forwarded_count: number;
}

/**
 * True when `candidate` should replace `existing` in a backup. The spec's order, compared
 * lexicographically (spec "Server-side key backups"; MSC1219): a verified key beats an unverified
 * one; then the lower first_message_index wins (it decrypts more history); then the lower
 * forwarded_count. Ties keep the existing key.
 *
 * Synapse's if/elif chain (synapse#13704) lets an unverified key with a lower index replace a
 * verified one, and a key with a higher index but fewer forwards replace a better one; this does not.
 */
export function isBetterBackupKey(candidate: BackupKeyRank, existing: BackupKeyRank): boolean {
  if (candidate.is_verified !== existing.is_verified) return candidate.is_verified;
  if (candidate.first_message_index !== existing.first_message_index) {
    return candidate.first_message_index < existing.first_message_index;
  }
  return candidate.forwarded_count < existing.forwarded_count;
}
