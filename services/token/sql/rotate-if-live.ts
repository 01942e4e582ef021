import { ROTATION_PARAMS, type RotationValues, rotateGuard, rotateSet } from "./rotate-session.ts";
import { sql, type Tables } from "./statement.ts";

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

/** Where the fast path reads the caller's identity and allow-lists from (see {@link RotationValues}). */
export interface CallerValues {
  clientId: string;
  /** text[] */
  audiences: string;
  /** text[], NULL: any tenant */
  tenants: string;
  /** text[], empty: any subject */
  subjectPrefixes: string;
}

/**
 * The fast path's refresh decision and allow-lists in SQL: the presented token is the session's live
 * one, the caller's own, session live and within both expiries, no subject cut-off since it began,
 * and the client may still mint for the session (some audience still allowed, tenant and subject
 * still served: the SQL form of flows/client-allow-lists.ts `currentGrant`'s refusals).
 */
export const rotateIfLiveWhere = (t: Tables, v: RotationValues, c: CallerValues) => `${rotateGuard(v)}
      AND s.client_id = ${c.clientId} AND s.expires_at > ${v.now} AND s.idle_expires_at > ${v.now}
      AND NOT EXISTS (SELECT 1 FROM ${t.subject_revocations} sr WHERE sr.subject = s.subject AND sr.not_before >= s.created_at)
      AND s.audience && ${c.audiences}
      AND (s.tenant IS NULL OR ${c.tenants} IS NULL OR s.tenant = ANY (${c.tenants}))
      AND (cardinality(${c.subjectPrefixes}) = 0
           OR EXISTS (SELECT 1 FROM unnest(${c.subjectPrefixes}) AS p(prefix) WHERE starts_with(s.subject, p.prefix)))`;

export const ROTATED_SESSION_COLUMNS = (v: RotationValues) =>
  `s.id::text AS session_id, s.subject, s.tenant, s.scopes, s.audience, s.claims, s.version,
             LEAST(${v.idleExpiresAt}, s.expires_at) AS refresh_expires_at`;

/**
 * The common refresh in one statement that writes one row: rotate the presented v2 token if, and
 * only if, the refresh decision would say "rotate" and the client may still mint for the session
 * ({@link rotateIfLiveWhere}), so a refusal never consumes the token. Anything else changes nothing
 * and returns no row, and the flow falls back to read → decide → apply, which owns every other
 * outcome.
 * Params: $1-$9 as rotate-session.ts, $10 caller client id, $11 allowed audiences, $12 allowed tenants
 * (NULL: any), $13 subject prefixes.
 */
export const rotateIfLive = sql<RotatedSessionRow>(
  "gh_rotate_if_live",
  (t) => `UPDATE ${t.sessions} s ${rotateSet(ROTATION_PARAMS)}
    WHERE ${rotateIfLiveWhere(t, ROTATION_PARAMS, {
      clientId: "$10::text",
      audiences: "$11::text[]",
      tenants: "$12::text[]",
      subjectPrefixes: "$13::text[]",
    })}
   RETURNING ${ROTATED_SESSION_COLUMNS(ROTATION_PARAMS)}`,
);
