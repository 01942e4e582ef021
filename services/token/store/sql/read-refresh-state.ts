import { sql } from "../sql-executor.ts";

export interface RefreshStateRow {
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
  used_at: Date | null;
  /** Refresh key that derived the successor; null before refresh keys existed (the legacy key). */
  successor_kid: string | null;
  token_created_at: Date;
  successor_used_at: Date | null;
  subject_not_before: Date | null;
}

/** Everything the refresh decision needs about a presented token, by its hash ($1). */
export const readRefreshState = sql<RefreshStateRow>(
  "gh_read_refresh_state",
  `SELECT s.id::text AS session_id, s.client_id, s.subject, s.tenant, s.scopes, s.audience, s.claims, s.version,
          s.created_at AS session_created_at, s.revoked_at AS session_revoked_at,
          s.idle_expires_at, s.expires_at,
          t.used_at, t.successor_kid, t.created_at AS token_created_at,
          succ.used_at AS successor_used_at,
          sr.not_before AS subject_not_before
     FROM refresh_tokens t
     JOIN sessions s ON s.id = t.session_id
     LEFT JOIN refresh_tokens succ ON succ.token_hash = t.successor_hash
     LEFT JOIN subject_revocations sr ON sr.subject = s.subject
    WHERE t.token_hash = $1::bytea`,
);
