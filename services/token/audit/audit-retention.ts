import type { Logger } from "../../shared/logging/index.ts";
import type { OutboxDb } from "../revocation/outbox-db.ts";
import { type SqlExecutor, sql } from "../store/sql-executor.ts";
import type { AuditAction, AuditActorName } from "./audit-actions.ts";

/**
 * Audit retention: events older than GATEHOUSE_AUDIT_RETENTION are deleted, in bounded batches, by
 * one replica at a time. The only statement that ever removes an audit row; nothing updates one.
 */
export interface AuditRetentionOptions {
  /** Statements run on one connection per pass: the lock is a session advisory lock. */
  db: Pick<OutboxDb, "withSession">;
  /** Keep events this long (ms); 0 keeps them forever and the timer never starts. */
  retentionMs: number;
  now: () => number;
  log: Logger;
  /** Rows per DELETE, so no statement holds locks or builds WAL for long. Default 1000. */
  batchSize?: number;
  /** How often a pass runs. Default one hour: a day's worth of rows is a few passes at most. */
  checkEveryMs?: number;
}

export interface AuditPrune {
  /** False when another replica held the lock, so this one did nothing. */
  locked: boolean;
  deleted: number;
  /** Events before this instant were due; null when retention is off. */
  cutoff: Date | null;
}

export interface AuditRetention {
  start(): void;
  /** One pass now, exactly what the timer runs. */
  runOnce(): Promise<AuditPrune>;
  /** Stops the timer and waits for a pass in flight (which stops after its current batch). */
  stop(): Promise<void>;
}

const ACTOR: AuditActorName = "system:audit-retention";
const PRUNE: AuditAction = "audit.prune";

/** The instant before which events are due for deletion, or null when they are kept forever. */
export function retentionCutoff(nowMs: number, retentionMs: number): Date | null {
  return retentionMs > 0 ? new Date(nowMs - retentionMs) : null;
}

/** "ghr" in ASCII, beside the schema's hash: one pruner per schema, other schemas never wait. */
const LOCK = `${0x676872}, hashtext(current_schema())`;

const tryLock = sql<{ locked: boolean }>(
  "gh_audit_retention_lock",
  `SELECT pg_try_advisory_lock(${LOCK}) AS locked`,
);
const unlock = sql<{ released: boolean }>(
  "gh_audit_retention_unlock",
  `SELECT pg_advisory_unlock(${LOCK}) AS released`,
);

/** Deletes up to $2 of the oldest events before $1, using the occurred_at index. */
const deleteBatch = sql<{ n: number }>(
  "gh_audit_prune_batch",
  `WITH d AS (
     DELETE FROM audit_events
      WHERE id IN (SELECT id FROM audit_events WHERE occurred_at < $1::timestamptz
                    ORDER BY occurred_at LIMIT $2::int)
     RETURNING 1
   )
   SELECT count(*)::int AS n FROM d`,
);

/** The pass's own record, so a gap in the log is explained by the log. $1 now, $2 details. */
const recordPrune = sql<never>(
  "gh_audit_prune_record",
  `INSERT INTO audit_events (occurred_at, actor, action, target_type, outcome, details)
   VALUES ($1::timestamptz, '${ACTOR}', '${PRUNE}', 'audit', 'success', $2::jsonb)`,
);

export function createAuditRetention(options: AuditRetentionOptions): AuditRetention {
  const { db, retentionMs, now, log } = options;
  const batchSize = options.batchSize ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> | undefined;
  let stopping = false;

  async function prune(session: SqlExecutor, cutoff: Date): Promise<number> {
    let deleted = 0;
    for (;;) {
      const [row] = await session.query(deleteBatch, [cutoff, batchSize]);
      const n = row?.n ?? 0;
      deleted += n;
      if (n < batchSize || stopping) return deleted;
    }
  }

  async function pass(): Promise<AuditPrune> {
    const cutoff = retentionCutoff(now(), retentionMs);
    if (cutoff === null) return { locked: false, deleted: 0, cutoff };
    return db.withSession(async (session) => {
      const [lock] = await session.query(tryLock, []);
      if (!lock?.locked) return { locked: false, deleted: 0, cutoff };
      try {
        const deleted = await prune(session, cutoff);
        if (deleted > 0) {
          await session.query(recordPrune, [
            new Date(now()),
            JSON.stringify({
              deleted,
              before: cutoff.toISOString(),
              retention_days: retentionMs / 86_400_000,
            }),
          ]);
          log.info({ deleted, before: cutoff.toISOString() }, "audit events past retention deleted");
        }
        return { locked: true, deleted, cutoff };
      } finally {
        await session.query(unlock, []);
      }
    });
  }

  function tick(): void {
    if (inFlight) return;
    inFlight = pass()
      .catch((err) => log.warn({ err: (err as Error).message }, "audit retention pass failed"))
      .finally(() => {
        inFlight = undefined;
      });
  }

  return {
    start() {
      if (timer || retentionMs <= 0) return;
      stopping = false;
      tick();
      timer = setInterval(tick, options.checkEveryMs ?? 3_600_000);
      timer.unref();
    },
    runOnce: pass,
    async stop() {
      stopping = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await inFlight;
    },
  };
}
