import type { Rotation } from "../store/token-store.ts";
import { sql } from "./statement.ts";

/**
 * The SQL expressions one rotation's values are read from: `$n` parameters in the one-row statements,
 * columns of the values list in the grouped one (rotate-if-live-many.ts).
 */
export interface RotationValues {
  sessionId: string;
  presentedGeneration: string;
  presentedHash: string;
  successorHash: string;
  now: string;
  idleExpiresAt: string;
  signingKid: string;
  successorKid: string;
  macKid: string;
}

/**
 * The assignments every rotation of a v2 refresh token shares. One row changes, and none of the
 * columns it sets is indexed, so Postgres can do it as a HOT update.
 */
export const rotateSet = (v: RotationValues) => `SET refresh_generation = ${v.presentedGeneration} + 1,
            refresh_previous_hash = ${v.presentedHash},
            refresh_hash = ${v.successorHash},
            refresh_rotated_at = ${v.now},
            refresh_successor_kid = ${v.successorKid},
            refresh_mac_kid = ${v.macKid},
            last_used_at = ${v.now},
            idle_expires_at = LEAST(${v.idleExpiresAt}, s.expires_at),
            signing_kid = ${v.signingKid}`;

/**
 * The guard every rotation shares (the fast path in rotate-if-live.ts adds the refresh decision's and
 * the allow-lists' conditions). The guard on generation and current hash is what makes two concurrent
 * rotations of one token one rotation: the second waits on the row lock, re-checks the guard on the
 * committed row, finds the generation moved, and changes nothing.
 */
export const rotateGuard = (v: RotationValues) => `s.id = ${v.sessionId}
        AND s.refresh_generation = ${v.presentedGeneration} AND s.refresh_hash = ${v.presentedHash}
        AND s.revoked_at IS NULL`;

/**
 * Params of the one-row statements: $1 session id, $2 presented generation, $3 presented hash,
 * $4 successor hash, $5 now, $6 new idle expiry, $7 signing kid, $8 successor key id, $9 MAC key id
 * of the successor.
 */
export const ROTATION_PARAMS: RotationValues = {
  sessionId: "$1::uuid",
  presentedGeneration: "$2::int",
  presentedHash: "$3::bytea",
  successorHash: "$4::bytea",
  now: "$5::timestamptz",
  idleExpiresAt: "$6::timestamptz",
  signingKid: "$7::text",
  successorKid: "$8::text",
  macKid: "$9::text",
};

/**
 * Refresh, after the flow decided "rotate" from a read: rotate the presented v2 token, or nothing (no
 * row: it lost a race with a rotation or a revoke, or the session is gone; the flow reads again).
 */
export const rotateSession = sql<{ version: number; expires_at: Date }>(
  "gh_rotate_session",
  (t) => `UPDATE ${t.sessions} s ${rotateSet(ROTATION_PARAMS)}
    WHERE ${rotateGuard(ROTATION_PARAMS)}
   RETURNING s.version, LEAST($6::timestamptz, s.expires_at) AS expires_at`,
);

/** $1-$9 of rotateSession, which rotate-if-live.ts's $1-$9 are too. */
export function rotationParams(r: Rotation): unknown[] {
  return [
    r.sessionId,
    r.presentedGeneration,
    r.presentedHash,
    r.successorHash,
    r.now,
    r.idleExpiresAt,
    r.signingKid,
    r.successorKid,
    r.macKid,
  ];
}
