import type { Prisma } from "../../gen/prisma/client.ts";
import { type AuditAction, type AuditActorName, clientActorName } from "./audit-actions.ts";

/** How an audited action ended; stored as these words (`audit_events.outcome`). */
export type AuditOutcomeWord = "success" | "denied" | "failed";

/** Who is acting and for which request: a caller (`client:<id>`) or Gatehouse itself (`system:<part>`). */
export interface AuditActor {
  actor: AuditActorName;
  requestId?: string | undefined;
}

export interface AuditEntry extends AuditActor {
  at: Date;
  /** See {@link AuditAction} for the naming scheme. */
  action: AuditAction;
  targetType?: string | undefined;
  targetId?: string | undefined;
  subject?: string | undefined;
  clientId?: string | undefined;
  outcome: AuditOutcomeWord;
  /** Action-specific facts: field names, reasons, counts. Never secrets, hashes or key material. */
  details?: Record<string, unknown> | undefined;
}

/** The audit actor of a calling client. */
export function clientActor(clientId: string, requestId?: string): AuditActor {
  return { actor: clientActorName(clientId), requestId };
}

/** Appends one audit row; pass the transaction client so the row commits with the change it records. */
export async function recordAudit(
  db: Pick<Prisma.TransactionClient, "auditEvent">,
  entry: AuditEntry,
): Promise<void> {
  await db.auditEvent.create({
    data: {
      occurredAt: entry.at,
      actor: entry.actor,
      action: entry.action,
      targetType: entry.targetType ?? null,
      targetId: entry.targetId ?? null,
      subject: entry.subject ?? null,
      clientId: entry.clientId ?? null,
      requestId: entry.requestId ?? null,
      outcome: entry.outcome,
      ...(entry.details ? { details: entry.details as Prisma.InputJsonObject } : {}),
    },
  });
}
