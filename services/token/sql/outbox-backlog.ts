import { sql } from "../store/sql-executor.ts";

/** Unpublished rows and when the oldest of them committed (for metrics); uses the partial index. */
export const outboxBacklog = sql<{ backlog: number; oldest: Date | null }>(
  "gh_outbox_backlog",
  `SELECT count(*)::int AS backlog, min(occurred_at) AS oldest FROM revocation_outbox WHERE published_at IS NULL`,
);
