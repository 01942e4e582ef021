import type { AuditAction } from "../audit/audit-actions.ts";
import { sql } from "../store/sql-executor.ts";

/**
 * One token exchange, for the audit log. Params: $1 now, $2 actor (`client:<id>`), $3 request id,
 * $4 session id or NULL (service tokens have none), $5 subject, $6 exchanging client id, $7 details
 * (jsonb: audiences, scopes, actor chain, both tokens' `jti`; never a token), $8 outcome
 * (`success`, or `denied` when the subject token's `may_act` refused the actor).
 */
export const recordExchange = sql<Record<string, never>>(
  "gh_record_exchange",
  `INSERT INTO audit_events (occurred_at, actor, action, target_type, target_id, subject, client_id, request_id, outcome, details)
   VALUES ($1::timestamptz, $2::text, '${"access_token.exchange" satisfies AuditAction}',
           CASE WHEN $4::text IS NULL THEN 'subject' ELSE 'session' END, COALESCE($4::text, $5::text),
           $5::text, $6::text, $3::text, $8::text, $7::jsonb)`,
);
