import { auditInsert } from "./outbox-and-audit.ts";
import { sql } from "./statement.ts";

/**
 * The audit pruner's replica lock: "ghr" in ASCII beside the schema name's hash, so one pruner runs
 * per schema and other schemas never wait. Transaction-scoped and taken first in each batch's
 * transaction: nothing outlives the transaction, so a transaction-pooling pooler cannot strand it on
 * a server connection.
 */
export const tryAuditRetentionLock = sql<{ locked: boolean }>(
  "gh_audit_retention_lock",
  (t) => `SELECT pg_try_advisory_xact_lock(${0x676872}, hashtext(${t.schemaLiteral})) AS locked`,
);

/** Deletes up to $2 of the oldest events before $1, using the occurred_at index. */
export const deleteAuditBatch = sql<{ n: number }>(
  "gh_audit_prune_batch",
  (t) => `WITH d AS (
     DELETE FROM ${t.audit_events}
      WHERE id IN (SELECT id FROM ${t.audit_events} WHERE occurred_at < $1::timestamptz
                    ORDER BY occurred_at LIMIT $2::int)
     RETURNING 1
   )
   SELECT count(*)::int AS n FROM d`,
);

/** The pass's own record, so a gap in the log is explained by the log. $1 now, $2 details. */
export const recordAuditPrune = sql<never>("gh_audit_prune_record", (t) =>
  auditInsert(t, {
    occurredAt: "$1::timestamptz",
    actor: { system: "system:audit-retention" },
    action: "audit.prune",
    targetType: "'audit'",
    outcome: "success",
    details: "$2::jsonb",
  }),
);
