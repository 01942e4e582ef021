import { sql } from "./statement.ts";

/** What a refresh needs to know about the session a presented token belongs to. */
export interface SessionRefreshRow {
  session_id: string;
  client_id: string;
  subject: string;
  tenant: string | null;
  scopes: string[];
  audience: string[];
  claims: Record<string, unknown> | null;
  version: number;
  session_created_at: Date;
  session_revoked_at: Date | null;
  idle_expires_at: Date;
  expires_at: Date;
  subject_not_before: Date | null;
  /** Generation of the live token; 0 while the session's tokens are legacy rows. */
  refresh_generation: number;
  /** MAC key id of the live token: a replay re-mints it with that key. */
  refresh_mac_kid: string | null;
}

/** A legacy (v1) token's row and its session, by the token's hash. */
export interface RefreshStateRow extends SessionRefreshRow {
  used_at: Date | null;
  /** Refresh key that derived the successor; null before refresh keys existed (the legacy key). */
  successor_kid: string | null;
  /** The successor is a legacy row too (rotated before the upgrade), not the session's v2 token. */
  successor_is_legacy: boolean;
  token_created_at: Date;
  successor_used_at: Date | null;
}

/** A session's v2 refresh state, by session id. */
export interface FamilyStateRow extends SessionRefreshRow {
  refresh_hash: Buffer | null;
  refresh_previous_hash: Buffer | null;
  refresh_rotated_at: Date | null;
  refresh_successor_kid: string | null;
  /** When the live token was minted: the last rotation, or the session's start. */
  token_created_at: Date;
}

const SESSION_COLUMNS = `s.id::text AS session_id, s.client_id, s.subject, s.tenant, s.scopes, s.audience, s.claims,
          s.version, s.created_at AS session_created_at, s.revoked_at AS session_revoked_at,
          s.idle_expires_at, s.expires_at, sr.not_before AS subject_not_before,
          s.refresh_generation, s.refresh_mac_kid`;

/**
 * Everything the refresh decision needs about a presented legacy token, by its hash ($1). Its
 * successor is either a legacy row (a rotation made before the upgrade) or the session's v2 state
 * (a rotation made since, which opened generation 1): used once the session has gone past it.
 */
export const readRefreshState = sql<RefreshStateRow>(
  "gh_read_refresh_state",
  (t) => `SELECT ${SESSION_COLUMNS},
          t.used_at, t.successor_kid, t.created_at AS token_created_at,
          succ.token_hash IS NOT NULL AS successor_is_legacy,
          COALESCE(succ.used_at, CASE WHEN s.refresh_generation > 1 THEN s.refresh_rotated_at END) AS successor_used_at
     FROM ${t.refresh_tokens} t
     JOIN ${t.sessions} s ON s.id = t.session_id
     LEFT JOIN ${t.refresh_tokens} succ ON succ.token_hash = t.successor_hash
     LEFT JOIN ${t.subject_revocations} sr ON sr.subject = s.subject
    WHERE t.token_hash = $1::bytea`,
);

/** A session's refresh state for a presented v2 token, by the session id it carries ($1). */
export const readFamilyState = sql<FamilyStateRow>(
  "gh_read_family_state",
  (t) => `SELECT ${SESSION_COLUMNS},
          s.refresh_hash, s.refresh_previous_hash, s.refresh_rotated_at, s.refresh_successor_kid,
          COALESCE(s.refresh_rotated_at, s.created_at) AS token_created_at
     FROM ${t.sessions} s
     LEFT JOIN ${t.subject_revocations} sr ON sr.subject = s.subject
    WHERE s.id = $1::uuid`,
);
