import type { OutboxRow } from "./outbox-batch.ts";
import { sql } from "./statement.ts";

/**
 * One page of every row that still matters, published or not, in id order: what a lost stream is
 * rebuilt from. Params: $1 after this id, $2 now, $3 page size.
 */
export const relevantOutboxPage = sql<OutboxRow>(
  "gh_outbox_relevant_page",
  (
    t,
  ) => `SELECT o.id::text AS id, o.event_id::text AS event_id, o.type, o.payload, o.occurred_at, o.relevant_until
     FROM ${t.revocation_outbox} o
    WHERE o.id > $1::bigint AND o.relevant_until > $2::timestamptz
    ORDER BY o.id LIMIT $3::int`,
);
