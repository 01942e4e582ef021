import { sql } from "./statement.ts";

/** An outbox row as the relay reads it. */
export interface OutboxRow {
  /** bigserial, as text. */
  id: string;
  event_id: string;
  type: string;
  payload: unknown;
  occurred_at: Date;
  relevant_until: Date;
}

type Missing<T> = { [K in keyof T]: null };

export type OutboxBatchRow = { last_stream_id: string | null } & (OutboxRow | Missing<OutboxRow>);

/**
 * The next unpublished rows in id order, and the stream id of the newest still-relevant published row
 * (what the stream must still hold, for reset detection). Params: $1 batch size, $2 now. Always at
 * least one row: with nothing to publish, one whose outbox columns are all NULL. Run under the relay
 * lock (see relay-lock.ts).
 */
export const outboxBatch = sql<OutboxBatchRow>(
  "gh_outbox_batch",
  (
    t,
  ) => `SELECT l.last_stream_id, b.id::text AS id, b.event_id::text AS event_id, b.type, b.payload, b.occurred_at, b.relevant_until
     FROM (SELECT (SELECT stream_id FROM ${t.revocation_outbox}
                    WHERE published_at IS NOT NULL AND stream_id IS NOT NULL AND relevant_until > $2::timestamptz
                    ORDER BY id DESC LIMIT 1) AS last_stream_id) l
     LEFT JOIN LATERAL (
       SELECT * FROM ${t.revocation_outbox} WHERE published_at IS NULL ORDER BY id LIMIT $1::int
     ) b ON true
    ORDER BY b.id`,
);
