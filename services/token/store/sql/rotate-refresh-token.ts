import { sql } from "../sql-executor.ts";

/**
 * Refresh: mark the presented token used, insert its successor, touch the session — or nothing.
 * Params: $1 session id, $2 presented hash, $3 successor hash, $4 now, $5 new idle expiry, $6 kid,
 * $7 successor key id.
 *
 * The session row is updated first, so its row lock orders this statement against a concurrent
 * Revoke (which updates the same row): once a revoke has committed, `revoked_at IS NULL` fails on
 * re-check and no successor is created. Two concurrent rotations of one token queue on the same lock;
 * the second re-checks `used_at IS NULL` on the committed row, finds it used, and inserts nothing.
 * `rotated = false` with a row means "lost the race, read again"; no row means "session gone".
 */
export const rotateRefreshToken = sql<{ version: number; rotated: boolean; expires_at: Date }>(
  "gh_rotate_refresh_token",
  `WITH sess AS (
     UPDATE sessions
        SET last_used_at = $4::timestamptz,
            idle_expires_at = LEAST($5::timestamptz, expires_at),
            signing_kid = $6::text
      WHERE id = $1::uuid AND revoked_at IS NULL
      RETURNING version, expires_at
   ), tok AS (
     UPDATE refresh_tokens
        SET used_at = $4::timestamptz, successor_hash = $3::bytea, successor_kid = $7::text
      WHERE token_hash = $2::bytea AND used_at IS NULL AND EXISTS (SELECT 1 FROM sess)
      RETURNING session_id
   ), ins AS (
     INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
     SELECT $3::bytea, tok.session_id, $2::bytea, $4::timestamptz, LEAST($5::timestamptz, sess.expires_at)
       FROM tok, sess
     RETURNING 1
   )
   SELECT sess.version, EXISTS (SELECT 1 FROM ins) AS rotated, LEAST($5::timestamptz, sess.expires_at) AS expires_at
     FROM sess`,
);
