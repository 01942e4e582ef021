import type { AuditAction } from "../audit/audit-actions.ts";
import { sql } from "../store/sql-executor.ts";

/**
 * Reuse detected: revoke the whole family, queue its revocation event and record the detection, all
 * in one statement. Params: $1 session id, $2 now, $3 event relevant-until, $4 actor (`client:<id>`),
 * $5 request id, $6 presented token's fingerprint. Returns nothing when the session was already revoked.
 */
export const revokeForReuse = sql<{ session_id: string; event_id: string }>(
  "gh_revoke_for_reuse",
  `WITH s AS (
     UPDATE sessions SET revoked_at = $2::timestamptz, revoke_reason = 'refresh_token_reused'
      WHERE id = $1::uuid AND revoked_at IS NULL
      RETURNING id, subject, client_id
   ), o AS (
     INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until)
     SELECT 'session_revoked', jsonb_build_object('sid', s.id::text), $2::timestamptz, $3::timestamptz FROM s
     RETURNING event_id
   ), a AS (
     INSERT INTO audit_events (occurred_at, actor, action, target_type, target_id, subject, client_id, request_id, outcome, details)
     SELECT $2::timestamptz, $4::text, '${"refresh_token.reuse" satisfies AuditAction}', 'session', s.id::text, s.subject, s.client_id, $5::text,
            'denied', jsonb_build_object('token_fp', $6::text, 'sessions_revoked', 1)
       FROM s
   )
   SELECT s.id::text AS session_id, o.event_id::text AS event_id FROM s, o`,
);
