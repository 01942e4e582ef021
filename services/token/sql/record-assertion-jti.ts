import { sql } from "./statement.ts";

/**
 * Records that a private_key_jwt assertion's `jti` was used, unless it already was (RFC 7523 §3).
 * Params: $1 client id, $2 jti, $3 the assertion's expiry, $4 now. One row (`fresh`) when this is
 * the first use, or when an earlier row for the pair has expired; no row for a replay. Two
 * concurrent uses of one pair serialize on the primary key, so exactly one gets the row, on any
 * replica. Each call also deletes a few expired rows of any client (never the pair at hand, which
 * the upsert decides), which keeps the table as small as the assertions still live without a job
 * of its own.
 */
export const recordAssertionJti = sql<{ fresh: number }>(
  "gh_record_assertion_jti",
  (t) => `WITH pruned AS (
     DELETE FROM ${t.client_assertion_jtis}
      WHERE ctid IN (SELECT ctid FROM ${t.client_assertion_jtis}
                      WHERE expires_at < $4::timestamptz AND NOT (client_id = $1::text AND jti = $2::text)
                      LIMIT 16)
   )
   INSERT INTO ${t.client_assertion_jtis} (client_id, jti, expires_at)
   VALUES ($1::text, $2::text, $3::timestamptz)
   ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
    WHERE client_assertion_jtis.expires_at < $4::timestamptz
   RETURNING 1 AS fresh`,
);
