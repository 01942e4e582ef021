import { sql } from "../sql-executor.ts";

export interface RotatedSessionRow {
  session_id: string;
  subject: string;
  tenant: string | null;
  scopes: string[];
  audience: string[];
  claims: Record<string, unknown> | null;
  version: number;
  refresh_expires_at: Date;
  rotated: boolean;
}

/**
 * The common refresh in one round trip: rotate the token if, and only if, the refresh decision would
 * say "rotate" — unused token, the caller's own, session live and within both expiries, no subject
 * cut-off since it began — and the client may still mint for the session (some audience still allowed,
 * tenant and subject still served: the SQL form of flows/client-allow-lists.ts `currentGrant`'s
 * refusals), so a refusal never consumes the token. Anything else changes nothing and returns no row
 * (or `rotated = false`), and the flow falls back to read → decide → apply, which owns every other
 * outcome.
 * Params: $1 presented hash, $2 successor hash, $3 now, $4 new idle expiry, $5 kid, $6 caller client id,
 * $7 successor key id, $8 allowed audiences, $9 allowed tenants (NULL: any), $10 subject prefixes.
 * Same lock order as rotate-refresh-token: the session row first, then the token row.
 */
export const rotateIfLive = sql<RotatedSessionRow>(
  "gh_rotate_if_live",
  `WITH tok AS (
     SELECT session_id FROM refresh_tokens WHERE token_hash = $1::bytea AND used_at IS NULL
   ), sess AS (
     UPDATE sessions s
        SET last_used_at = $3::timestamptz,
            idle_expires_at = LEAST($4::timestamptz, s.expires_at),
            signing_kid = $5::text
       FROM tok
      WHERE s.id = tok.session_id AND s.client_id = $6::text AND s.revoked_at IS NULL
        AND s.expires_at > $3::timestamptz AND s.idle_expires_at > $3::timestamptz
        AND NOT EXISTS (SELECT 1 FROM subject_revocations sr WHERE sr.subject = s.subject AND sr.not_before >= s.created_at)
        AND s.audience && $8::text[]
        AND (s.tenant IS NULL OR $9::text[] IS NULL OR s.tenant = ANY ($9::text[]))
        AND (cardinality($10::text[]) = 0
             OR EXISTS (SELECT 1 FROM unnest($10::text[]) AS p(prefix) WHERE starts_with(s.subject, p.prefix)))
      RETURNING s.id, s.subject, s.tenant, s.scopes, s.audience, s.claims, s.version, s.expires_at
   ), upd AS (
     UPDATE refresh_tokens SET used_at = $3::timestamptz, successor_hash = $2::bytea, successor_kid = $7::text
      WHERE token_hash = $1::bytea AND used_at IS NULL AND EXISTS (SELECT 1 FROM sess)
      RETURNING session_id
   ), ins AS (
     INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
     SELECT $2::bytea, upd.session_id, $1::bytea, $3::timestamptz, LEAST($4::timestamptz, sess.expires_at)
       FROM upd, sess
     RETURNING 1
   )
   SELECT sess.id::text AS session_id, sess.subject, sess.tenant, sess.scopes, sess.audience, sess.claims, sess.version,
          LEAST($4::timestamptz, sess.expires_at) AS refresh_expires_at, EXISTS (SELECT 1 FROM ins) AS rotated
     FROM sess`,
);
