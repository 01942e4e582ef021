import { auditInsert } from "./outbox-and-audit.ts";
import { sql } from "./statement.ts";

/**
 * One token exchange, for the audit log. Params: $1 now, $2 actor (`client:<id>`), $3 request id,
 * $4 session id or NULL (service tokens have none), $5 subject, $6 exchanging client id, $7 details
 * (jsonb: audiences, scopes, actor chain, both tokens' `jti`; never a token), $8 outcome
 * (`success`, or `denied` when the subject token's `may_act` refused the actor).
 */
export const recordExchange = sql<Record<string, never>>("gh_record_exchange", (t) =>
  auditInsert(t, {
    occurredAt: "$1::timestamptz",
    actor: "$2::text",
    action: "access_token.exchange",
    targetType: "CASE WHEN $4::text IS NULL THEN 'subject' ELSE 'session' END",
    targetId: "COALESCE($4::text, $5::text)",
    subject: "$5::text",
    clientId: "$6::text",
    requestId: "$3::text",
    outcome: { expression: "$8::text" },
    details: "$7::jsonb",
  }),
);
