import { sql } from "./statement.ts";

/**
 * What the session janitor deletes: sessions that expired (absolute or idle) or were revoked before
 * the cut-off $1 (now minus GATEHOUSE_SESSION_RETENTION), and the refresh-token rows they still have.
 * A session past its expiry can no longer rotate, so nothing adds rows to a family once it is due.
 */
const DUE = `(s.expires_at < $1::timestamptz OR s.idle_expires_at < $1::timestamptz OR s.revoked_at < $1::timestamptz)`;

/**
 * One batch, inside the janitor's transaction after its lock. It takes the first $2 due sessions the
 * scan finds (so it reads no further once it has them), deletes up to $2 refresh-token rows of those,
 * and deletes those of them that had no refresh-token row left when the statement started. A session
 * is deleted only once its tokens are gone, so the foreign key's ON DELETE CASCADE never fans out and
 * a batch touches at most 2 × $2 rows, however many rotations a family had; the sessions it emptied
 * go in the next batch. `due_sessions` is how many due sessions the batch saw.
 */
export const pruneSessionsBatch = sql<{ due_sessions: number; refresh_tokens: number; sessions: number }>(
  "gh_janitor_prune_batch",
  (t) => `WITH due AS MATERIALIZED (
     SELECT s.id FROM ${t.sessions} s WHERE ${DUE} LIMIT $2::int
   ), t AS (
     DELETE FROM ${t.refresh_tokens}
      WHERE token_hash IN (SELECT rt.token_hash FROM due JOIN ${t.refresh_tokens} rt ON rt.session_id = due.id LIMIT $2::int)
     RETURNING 1
   ), s AS (
     DELETE FROM ${t.sessions}
      WHERE id IN (SELECT due.id FROM due WHERE NOT EXISTS (SELECT 1 FROM ${t.refresh_tokens} rt WHERE rt.session_id = due.id))
     RETURNING 1
   )
   SELECT (SELECT count(*) FROM due)::int AS due_sessions,
          (SELECT count(*) FROM t)::int AS refresh_tokens,
          (SELECT count(*) FROM s)::int AS sessions`,
);

/**
 * Due sessions not yet deleted, counted up to $2 so the count costs at most that many rows once found
 * (without an index on expiry, finding them is still a scan of `sessions`).
 */
export const dueSessionsBacklog = sql<{ n: number }>(
  "gh_janitor_backlog",
  (t) => `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${t.sessions} s WHERE ${DUE} LIMIT $2::int) due`,
);
