import { sql } from "./statement.ts";

/**
 * Marks rows published with their stream ids, in one statement. Params: $1 outbox ids, $2 stream ids
 * (same order; NULL for a row that could not form an event and was left out of the stream), $3 now.
 */
export const markPublished = sql<never>(
  "gh_outbox_mark_published",
  (t) => `UPDATE ${t.revocation_outbox} o SET published_at = $3::timestamptz, stream_id = u.stream_id
     FROM unnest($1::bigint[], $2::text[]) AS u(id, stream_id)
    WHERE o.id = u.id`,
);
