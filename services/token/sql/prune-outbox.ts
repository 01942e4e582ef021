import { sql } from "./statement.ts";

/**
 * Deletes up to $2 outbox rows that stopped mattering before $1 (published or not: no live token can
 * be affected any more). Bounded, so a large backlog is pruned in short statements.
 */
export const pruneOutbox = sql<{ n: number }>(
  "gh_outbox_prune",
  (t) => `WITH d AS (
     DELETE FROM ${t.revocation_outbox}
      WHERE id IN (SELECT id FROM ${t.revocation_outbox} WHERE relevant_until < $1::timestamptz LIMIT $2::int)
     RETURNING 1
   )
   SELECT count(*)::int AS n FROM d`,
);
