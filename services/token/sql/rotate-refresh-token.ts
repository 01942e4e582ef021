import { sql } from "./statement.ts";

/**
 * Refresh of a legacy (v1) token, one kept as a `refresh_tokens` row: mark it used and move its
 * session to the one-row state of v2 tokens (generation 1, the successor's hash), adding no row —
 * or nothing. Params: $1 session id, $2 presented hash, $3 successor hash, $4 now, $5 new idle
 * expiry, $6 signing kid, $7 successor key id, $8 MAC key id of the successor.
 *
 * The session row is updated first, so its row lock orders this statement against a concurrent
 * Revoke or a concurrent rotation of the same token: the second re-checks `refresh_generation = 0`
 * and `revoked_at IS NULL` on the committed row, fails, and changes nothing. No row means "lost a
 * race or the session is gone: read again".
 */
export const rotateRefreshToken = sql<{ version: number; expires_at: Date }>(
  "gh_rotate_refresh_token",
  (t) => `WITH sess AS (
     UPDATE ${t.sessions}
        SET last_used_at = $4::timestamptz,
            idle_expires_at = LEAST($5::timestamptz, expires_at),
            signing_kid = $6::text,
            refresh_generation = 1,
            refresh_hash = $3::bytea,
            refresh_previous_hash = $2::bytea,
            refresh_rotated_at = $4::timestamptz,
            refresh_successor_kid = $7::text,
            refresh_mac_kid = $8::text
      WHERE id = $1::uuid AND revoked_at IS NULL AND refresh_generation = 0
        AND EXISTS (SELECT 1 FROM ${t.refresh_tokens} t
                     WHERE t.token_hash = $2::bytea AND t.session_id = $1::uuid AND t.used_at IS NULL)
      RETURNING version, expires_at
   ), tok AS (
     UPDATE ${t.refresh_tokens}
        SET used_at = $4::timestamptz, successor_hash = $3::bytea, successor_kid = $7::text
      WHERE token_hash = $2::bytea AND used_at IS NULL AND EXISTS (SELECT 1 FROM sess)
   )
   SELECT sess.version, LEAST($5::timestamptz, sess.expires_at) AS expires_at FROM sess`,
);
