import { auditInsert, outboxInsert } from "./outbox-and-audit.ts";
import { sql } from "./statement.ts";

/**
 * Reuse detected: revoke the whole family, queue its revocation event and record the detection, all
 * in one statement. Params: $1 session id, $2 now, $3 event relevant-until, $4 actor (`client:<id>`),
 * $5 request id, $6 presented token's fingerprint. Returns nothing when the session was already revoked.
 */
export const revokeForReuse = sql<{ session_id: string; event_id: string }>(
  "gh_revoke_for_reuse",
  (t) => `WITH s AS (
     UPDATE ${t.sessions} SET revoked_at = $2::timestamptz, revoke_reason = 'refresh_token_reused'
      WHERE id = $1::uuid AND revoked_at IS NULL
      RETURNING id, subject, client_id
   ), o AS (
     ${outboxInsert(t, {
       type: "'session_revoked'",
       payload: "jsonb_build_object('sid', s.id::text)",
       occurredAt: "$2::timestamptz",
       relevantUntil: "$3::timestamptz",
       from: "s",
     })}
   ), a AS (
     ${auditInsert(t, {
       occurredAt: "$2::timestamptz",
       actor: "$4::text",
       action: "refresh_token.reuse",
       targetType: "'session'",
       targetId: "s.id::text",
       subject: "s.subject",
       clientId: "s.client_id",
       requestId: "$5::text",
       outcome: "denied",
       details: "jsonb_build_object('token_fp', $6::text, 'sessions_revoked', 1)",
       from: "FROM s",
     })}
   )
   SELECT s.id::text AS session_id, o.event_id::text AS event_id FROM s, o`,
);
