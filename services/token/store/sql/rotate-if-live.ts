import { sql } from "../sql-executor.ts";
import { ROTATE_GUARD, ROTATE_SET } from "./rotate-session.ts";

export interface RotatedSessionRow {
  session_id: string;
  subject: string;
  tenant: string | null;
  scopes: string[];
  audience: string[];
  claims: Record<string, unknown> | null;
  version: number;
  refresh_expires_at: Date;
}

/**
 * The common refresh in one statement that writes one row: rotate the presented v2 token if, and
 * only if, the refresh decision would say "rotate" — it is the session's live token (generation and
 * hash), the caller's own, session live and within both expiries, no subject cut-off since it
 * began — and the client may still mint for the session (some audience still allowed, tenant and
 * subject still served: the SQL form of flows/client-allow-lists.ts `currentGrant`'s refusals), so a
 * refusal never consumes the token. Anything else changes nothing and returns no row, and the flow
 * falls back to read → decide → apply, which owns every other outcome.
 * Params: $1-$9 as rotate-session.ts, $10 caller client id, $11 allowed audiences, $12 allowed tenants
 * (NULL: any), $13 subject prefixes.
 */
export const rotateIfLive = sql<RotatedSessionRow>(
  "gh_rotate_if_live",
  `UPDATE sessions s ${ROTATE_SET}
    WHERE ${ROTATE_GUARD}
      AND s.client_id = $10::text AND s.expires_at > $5::timestamptz AND s.idle_expires_at > $5::timestamptz
      AND NOT EXISTS (SELECT 1 FROM subject_revocations sr WHERE sr.subject = s.subject AND sr.not_before >= s.created_at)
      AND s.audience && $11::text[]
      AND (s.tenant IS NULL OR $12::text[] IS NULL OR s.tenant = ANY ($12::text[]))
      AND (cardinality($13::text[]) = 0
           OR EXISTS (SELECT 1 FROM unnest($13::text[]) AS p(prefix) WHERE starts_with(s.subject, p.prefix)))
   RETURNING s.id::text AS session_id, s.subject, s.tenant, s.scopes, s.audience, s.claims, s.version,
             LEAST($6::timestamptz, s.expires_at) AS refresh_expires_at`,
);
