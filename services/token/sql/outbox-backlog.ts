import { sql } from "./statement.ts";

/** Unpublished rows and when the oldest of them committed (for metrics); uses the partial index. */
export const outboxBacklog = sql<{ backlog: number; oldest: Date | null }>(
  "gh_outbox_backlog",
  (t) =>
    `SELECT count(*)::int AS backlog, min(occurred_at) AS oldest FROM ${t.revocation_outbox} WHERE published_at IS NULL`,
);
