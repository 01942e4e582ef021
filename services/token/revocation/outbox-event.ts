import { toRevocationEvent } from "../../shared/revocation/revocation-entry.ts";
import type { RevocationEvent } from "../../shared/revocation/revocation-events.ts";
import type { OutboxRow } from "../sql/outbox-batch.ts";

/**
 * The event an outbox row stands for: the payload's members plus the envelope (event id, type, commit
 * time in ms, and `until` in epoch seconds, rounded up so the event never stops mattering early).
 * Null when the row does not form a valid event (its payload is not of its type's shape).
 */
export function outboxRowToEvent(row: OutboxRow): RevocationEvent | null {
  const payload = typeof row.payload === "object" && row.payload !== null ? row.payload : {};
  return toRevocationEvent({
    ...payload,
    id: row.event_id,
    type: row.type,
    at: new Date(row.occurred_at).getTime(),
    until: Math.ceil(new Date(row.relevant_until).getTime() / 1000),
  });
}
