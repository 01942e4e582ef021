import { sql } from "../sql-executor.ts";

/**
 * The assignments and guard every rotation of a v2 refresh token shares (the fast path in
 * rotate-if-live.ts adds the refresh decision's and the allow-lists' conditions). Params: $1 session
 * id, $2 presented generation, $3 presented hash, $4 successor hash, $5 now, $6 new idle expiry,
 * $7 signing kid, $8 successor key id, $9 MAC key id of the successor.
 *
 * One row changes, and none of the columns it sets is indexed, so Postgres can do it as a HOT
 * update. The guard on generation and current hash is what makes two concurrent rotations of one
 * token one rotation: the second waits on the row lock, re-checks the guard on the committed row,
 * finds the generation moved, and changes nothing.
 */
export const ROTATE_SET = `SET refresh_generation = $2::int + 1,
            refresh_previous_hash = $3::bytea,
            refresh_hash = $4::bytea,
            refresh_rotated_at = $5::timestamptz,
            refresh_successor_kid = $8::text,
            refresh_mac_kid = $9::text,
            last_used_at = $5::timestamptz,
            idle_expires_at = LEAST($6::timestamptz, s.expires_at),
            signing_kid = $7::text`;
export const ROTATE_GUARD = `s.id = $1::uuid AND s.refresh_generation = $2::int AND s.refresh_hash = $3::bytea
        AND s.revoked_at IS NULL`;

/**
 * Refresh, after the flow decided "rotate" from a read: rotate the presented v2 token, or nothing (no
 * row: it lost a race with a rotation or a revoke, or the session is gone; the flow reads again).
 */
export const rotateSession = sql<{ version: number; expires_at: Date }>(
  "gh_rotate_session",
  `UPDATE sessions s ${ROTATE_SET}
    WHERE ${ROTATE_GUARD}
   RETURNING s.version, LEAST($6::timestamptz, s.expires_at) AS expires_at`,
);
