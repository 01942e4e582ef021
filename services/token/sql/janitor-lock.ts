import { sql, type Tables } from "./statement.ts";

/**
 * The session janitor's replica lock: a transaction-scoped advisory lock, taken as the first
 * statement of each batch's transaction and released by its COMMIT or ROLLBACK. Nothing outlives the
 * transaction, so it holds behind a transaction-pooling pooler (PgBouncer `pool_mode = transaction`),
 * where consecutive transactions of one client may run on different server connections and a
 * session-level lock would stay behind on whichever connection took it.
 *
 * Taken in a statement of its own, before the batch's DELETE: under READ COMMITTED each statement
 * takes a new snapshot, so the DELETE then sees every batch a previous holder committed.
 *
 * The key is a fixed class ("ghjn", the high 32 bits) and the oid of this schema's `sessions` table
 * (the low 32), so janitors of different schemas in one database never contend.
 */
const key = (t: Tables) => `((1751673454::bigint << 32) | '${t.sessions}'::regclass::oid::bigint)`;

export const tryJanitorLock = sql<{ locked: boolean }>(
  "gh_janitor_try_lock",
  (t) => `SELECT pg_try_advisory_xact_lock(${key(t)}) AS locked`,
);
