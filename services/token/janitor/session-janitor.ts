import type { Logger } from "../../shared/logging/index.ts";
import type { Registry } from "../../shared/metrics/index.ts";
import { tryJanitorLock } from "../sql/janitor-lock.ts";
import { dueSessionsBacklog, pruneSessionsBatch } from "../sql/prune-sessions.ts";
import type { SqlExecutor } from "../store/sql-executor.ts";
import type { SqlTransactions } from "../store/sql-transaction.ts";
import { createJanitorMetrics } from "./janitor-metrics.ts";
import {
  addDeleted,
  type BatchDeleted,
  type BatchOutcome,
  type JanitorPass,
  needsAnotherBatch,
  sessionCutoff,
} from "./janitor-plan.ts";

/**
 * The session janitor: deletes sessions past GATEHOUSE_SESSION_RETENTION and their refresh-token rows,
 * in bounded batches, one replica at a time. Each batch is its own transaction whose first statement
 * takes a transaction-scoped advisory lock (sql/janitor-lock.ts); a replica that finds it taken
 * ends its pass, so replicas never delete at the same time and never count a row twice. No lock
 * outlives a transaction, which is what a transaction-pooling pooler requires.
 */
export interface SessionJanitorOptions {
  db: SqlTransactions & SqlExecutor;
  /** How long past expiry or revocation a session is kept (ms), so a late reuse is still recognised. */
  retentionMs: number;
  /** Rows per table per batch. */
  batchSize: number;
  /** Time between passes (ms); 0: no timer, passes run only through `runOnce` (`gatehouse janitor --once`). */
  intervalMs: number;
  now: () => number;
  log: Logger;
  metrics?: Registry;
}

export interface SessionJanitor {
  start(): void;
  /** One pass now, exactly what the timer runs. */
  runOnce(): Promise<JanitorPass>;
  /** Stops the timer and waits for a pass in flight, which ends after its current batch. */
  stop(): Promise<void>;
}

/** The backlog gauge counts at most this many due sessions, so reading it stays cheap. */
const BACKLOG_CAP = 10_000;

export function createSessionJanitor(options: SessionJanitorOptions): SessionJanitor {
  const { db, retentionMs, batchSize, now, log } = options;
  const metrics = createJanitorMetrics(options.metrics, BACKLOG_CAP);
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> | undefined;
  let stopping = false;

  /** One batch under the lock, or null when another replica holds it. */
  const batch = (cutoff: Date) =>
    db.transaction(async (tx): Promise<BatchOutcome | null> => {
      const [lock] = await tx.query(tryJanitorLock, []);
      if (!lock?.locked) return null;
      const [row] = await tx.query(pruneSessionsBatch, [cutoff, batchSize]);
      return {
        dueSessions: row?.due_sessions ?? 0,
        refreshTokens: row?.refresh_tokens ?? 0,
        sessions: row?.sessions ?? 0,
      };
    });

  async function pass(): Promise<JanitorPass> {
    const cutoff = sessionCutoff(now(), retentionMs);
    let deleted: BatchDeleted = { refreshTokens: 0, sessions: 0 };
    let batches = 0;
    let drained = false;
    for (;;) {
      const done = await batch(cutoff);
      if (done === null) break;
      batches++;
      deleted = addDeleted(deleted, { refreshTokens: done.refreshTokens, sessions: done.sessions });
      metrics.deleted("refresh_tokens", done.refreshTokens);
      metrics.deleted("sessions", done.sessions);
      if (!needsAnotherBatch(done, batchSize)) {
        drained = true;
        break;
      }
      if (stopping) break;
    }
    const locked = batches > 0;
    if (locked) metrics.passed(now());
    // A drained pass knows the answer; otherwise (stopped early, or another replica is at work) count.
    const backlog = drained ? 0 : ((await db.query(dueSessionsBacklog, [cutoff, BACKLOG_CAP]))[0]?.n ?? 0);
    metrics.backlog(backlog);
    if (deleted.sessions + deleted.refreshTokens > 0) {
      log.info(
        {
          sessions: deleted.sessions,
          refreshTokens: deleted.refreshTokens,
          before: cutoff.toISOString(),
          batches,
        },
        "sessions past retention deleted",
      );
    }
    return { locked, cutoff, deleted, batches, drained };
  }

  function tick(): void {
    if (inFlight) return;
    inFlight = pass()
      .catch((err) => log.warn({ err: (err as Error).message }, "session janitor pass failed"))
      .finally(() => {
        inFlight = undefined;
      });
  }

  return {
    start() {
      if (timer || options.intervalMs <= 0) return;
      stopping = false;
      tick();
      timer = setInterval(tick, options.intervalMs);
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
