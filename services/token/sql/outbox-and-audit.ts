import type { AuditAction, AuditActorName } from "../audit/audit-actions.ts";
import type { AuditOutcomeWord } from "../audit/audit-record.ts";
import type { Tables } from "./statement.ts";

/**
 * The two inserts every revocation statement ends with, written once: queue the event for the relay
 * (revocation_outbox) and record who did it (audit_events). Values are SQL expressions of the calling
 * statement (`$2::timestamptz`, `s.id::text`); action, outcome and system actors are fixed words and
 * go in as literals, so the statement text says what it records.
 */
export interface OutboxValues {
  /** Event type, a literal (`'session_revoked'`) or an expression. */
  type: string;
  /** jsonb expression. */
  payload: string;
  occurredAt: string;
  relevantUntil: string;
  /** The CTE or table the rows come from (one event per row). */
  from: string;
}

/** `INSERT INTO revocation_outbox … SELECT … FROM <from> RETURNING event_id` (and `extraReturning`). */
export function outboxInsert(t: Tables, v: OutboxValues, extraReturning = ""): string {
  return `INSERT INTO ${t.revocation_outbox} (type, payload, occurred_at, relevant_until)
       SELECT ${v.type}, ${v.payload}, ${v.occurredAt}, ${v.relevantUntil} FROM ${v.from}
       RETURNING event_id${extraReturning ? `, ${extraReturning}` : ""}`;
}

export interface AuditValues {
  occurredAt: string;
  /** An expression (`$5::text`), or a system actor written as a literal. */
  actor: string | { system: AuditActorName };
  action: AuditAction;
  targetType: string;
  targetId?: string;
  subject?: string;
  clientId?: string;
  requestId?: string;
  outcome: AuditOutcomeWord | { expression: string };
  /** jsonb expression. */
  details: string;
  /** Rows to audit (`FROM s`, `FROM s HAVING count(*) > 0`); none: exactly one row. */
  from?: string;
}

const literal = (word: string) => `'${word.replaceAll("'", "''")}'`;

/** `INSERT INTO audit_events (…) SELECT …` with only the columns given. */
export function auditInsert(t: Tables, v: AuditValues): string {
  const columns: [string, string | undefined][] = [
    ["occurred_at", v.occurredAt],
    ["actor", typeof v.actor === "string" ? v.actor : literal(v.actor.system)],
    ["action", literal(v.action)],
    ["target_type", v.targetType],
    ["target_id", v.targetId],
    ["subject", v.subject],
    ["client_id", v.clientId],
    ["request_id", v.requestId],
    ["outcome", typeof v.outcome === "string" ? literal(v.outcome) : v.outcome.expression],
    ["details", v.details],
  ];
  const present = columns.filter((c): c is [string, string] => c[1] !== undefined);
  return `INSERT INTO ${t.audit_events} (${present.map((c) => c[0]).join(", ")})
       SELECT ${present.map((c) => c[1]).join(", ")}${v.from ? `\n         ${v.from}` : ""}`;
}
