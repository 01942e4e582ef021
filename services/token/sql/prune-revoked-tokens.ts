import { sql } from "./statement.ts";

/** Deletes up to $2 revoked-jti rows whose token expired before $1: the token is dead anyway. */
export const pruneRevokedTokens = sql<{ n: number }>(
  "gh_revoked_tokens_prune",
  (t) => `WITH d AS (
     DELETE FROM ${t.revoked_access_tokens}
      WHERE jti IN (SELECT jti FROM ${t.revoked_access_tokens} WHERE expires_at < $1::timestamptz LIMIT $2::int)
     RETURNING 1
   )
   SELECT count(*)::int AS n FROM d`,
);
