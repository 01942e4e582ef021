import type { AuditAction } from "../audit/audit-actions.ts";
import { auditInsert } from "./outbox-and-audit.ts";
import { sql } from "./statement.ts";

/**
 * One window's refused logins, one audit row per element. $1 occurred_at, $2 a JSON array of
 * {client_id (null: unknown ids), details}.
 */
export const insertFailedLogins = sql<never>("gh_audit_failed_logins", (t) =>
  auditInsert(t, {
    occurredAt: "$1::timestamptz",
    actor: { system: "system:authenticator" },
    action: "client.authenticate" satisfies AuditAction,
    targetType: "'client'",
    targetId: "r.client_id",
    clientId: "r.client_id",
    outcome: "denied",
    details: "r.details",
    from: "FROM jsonb_to_recordset($2::jsonb) AS r(client_id text, details jsonb)",
  }),
);
