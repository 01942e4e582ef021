import { sql } from "./statement.ts";

/**
 * A fingerprint of the whole clients table: how many rows, and an order-free sum of a hash of each
 * row's id and `xmin` (the id of the transaction that last wrote it, which every UPDATE changes and
 * VACUUM FREEZE keeps). One small row, whatever the table's size; the database's own counter, so no
 * writer's clock can make a change look old.
 */
export const clientTableFingerprint = sql<{ fingerprint: string }>(
  "gh_client_table_fingerprint",
  (
    t,
  ) => `SELECT count(*)::text || ':' || coalesce(sum(hashtext(id || ':' || xmin::text)::bigint), 0)::text AS fingerprint
     FROM ${t.clients}`,
);

/** Every client id with the row version (`xmin`) it has now. */
export const clientRowVersions = sql<{ id: string; version: string }>(
  "gh_client_row_versions",
  (t) => `SELECT id, xmin::text AS version FROM ${t.clients}`,
);
