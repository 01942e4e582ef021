import type { Logger } from "../../shared/logging/index.ts";
import { deleteAuditBatch, recordAuditPrune, tryAuditRetentionLock } from "../sql/audit-retention.ts";
import type { SqlTransactions } from "../store/sql-transaction.ts";

/**
 * Audit retention: events older than GATEHOUSE_AUDIT_RETENTION are deleted, in bounded batches, by
 * one replica at a time. The only statement that ever removes an audit row; nothing updates one.
 */
export interface AuditRetentionOptions {
  /** Each batch is one transaction holding a transaction-scoped lock (works behind a transaction pooler). */
  db: SqlTransactions;
  /** Keep events this long (ms); 0 keeps them forever and the timer never starts. */
  retentionMs: number;
  now: () => number;
  log: Logger;
  /** Rows per DELETE, so no statement holds locks or builds WAL for long. Default 1000. */
  batchSize?: number;
  /** How often a pass runs. Default one hour: a day's worth of rows is a few passes at most. */
  checkEveryMs?: number;
}

interface AuditPrune {
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

/** The instant before which events are due for deletion, or null when they are kept forever. */
export function retentionCutoff(nowMs: number, retentionMs: number): Date | null {
  return retentionMs > 0 ? new Date(nowMs - retentionMs) : null;
}

export function createAuditRetention(options: AuditRetentionOptions): AuditRetention {
  const { db, retentionMs, now, log } = options;
  const batchSize = options.batchSize ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> | undefined;
  let stopping = false;

  /** One batch in its own transaction under the lock: rows deleted, or null when another replica has it. */
  const batch = (cutoff: Date, last: (deleted: number) => unknown[] | null) =>
    db.transaction(async (tx) => {
      const [lock] = await tx.query(tryAuditRetentionLock, []);
      if (!lock?.locked) return null;
      const n = (await tx.query(deleteAuditBatch, [cutoff, batchSize]))[0]?.n ?? 0;
      const record = n < batchSize || stopping ? last(n) : null;
      if (record) await tx.query(recordAuditPrune, record);
      return n;
    });

  async function pass(): Promise<AuditPrune> {
    const cutoff = retentionCutoff(now(), retentionMs);
    if (cutoff === null) return { locked: false, deleted: 0, cutoff };
    let deleted = 0;
    // The pass's record commits with its last batch, so the log explains every gap it has.
    const recordOf = (n: number) =>
      deleted + n > 0
        ? [
            new Date(now()),
            JSON.stringify({
              deleted: deleted + n,
              before: cutoff.toISOString(),
              retention_days: retentionMs / 86_400_000,
            }),
          ]
        : null;
    for (;;) {
      const n = await batch(cutoff, recordOf);
      if (n === null) {
        if (deleted === 0) return { locked: false, deleted: 0, cutoff };
        break;
      }
      deleted += n;
      if (n < batchSize || stopping) break;
    }
    if (deleted > 0)
      log.info({ deleted, before: cutoff.toISOString() }, "audit events past retention deleted");
    return { locked: true, deleted, cutoff };
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
