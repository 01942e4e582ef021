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

/**
 * Whether a pass needs another batch. A batch deletes refresh-token rows of due sessions and the due
 * sessions that had none left; so any token row deleted may have emptied a session the next batch
 * deletes, and a full batch of sessions may not be the last. Only a batch that found no token row
 * and fewer sessions than it could take proves nothing due remains.
 */
export function needsAnotherBatch(batch: BatchDeleted, batchSize: number): boolean {
  return batch.refreshTokens > 0 || batch.sessions >= batchSize;
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
