/**
 * The session janitor's decisions, apart from the SQL that carries them out: what is due, when a
 * pass has emptied the backlog, and what a pass reports.
 */

/** Sessions that expired (absolute or idle) or were revoked before this instant are deleted. */
export function sessionCutoff(nowMs: number, retentionMs: number): Date {
  return new Date(nowMs - retentionMs);
}

/** What one batch deleted (see `pruneSessionsBatch`). */
export interface BatchDeleted {
  refreshTokens: number;
  sessions: number;
}

/** What one batch saw: the due sessions it took, and what it deleted of them. */
export interface BatchOutcome extends BatchDeleted {
  dueSessions: number;
}

/**
 * Whether a pass needs another batch. A batch takes up to `batchSize` due sessions, deletes refresh-
 * token rows of them and those of them that had none left. So any token row deleted may have emptied
 * a session the next batch deletes, and a batch that took a full set of due sessions may have left
 * others behind. Only a batch that saw fewer due sessions than it could take and deleted no token
 * row has deleted every due session there was.
 */
export function needsAnotherBatch(batch: BatchOutcome, batchSize: number): boolean {
  return batch.refreshTokens > 0 || batch.dueSessions >= batchSize;
}

export interface JanitorPass {
  /** False when another replica held the lock from the first batch on: this one deleted nothing. */
  locked: boolean;
  /** Sessions that expired or were revoked before this instant were due. */
  cutoff: Date;
  deleted: BatchDeleted;
  batches: number;
  /** Nothing due was left when the pass ended (false when it stopped early or lost the lock). */
  drained: boolean;
}

export function addDeleted(a: BatchDeleted, b: BatchDeleted): BatchDeleted {
  return { refreshTokens: a.refreshTokens + b.refreshTokens, sessions: a.sessions + b.sessions };
}
