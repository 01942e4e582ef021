import { sql, type Tables } from "./statement.ts";

/**
 * The outbox relay's lock: one publisher at a time per outbox table, so stream order follows outbox
 * order across replicas. A transaction-scoped advisory lock, taken as the first statement of the
 * relay pass's transaction and released by its COMMIT or ROLLBACK, so nothing outlives the pass:
 * behind a transaction-pooling pooler (PgBouncer `pool_mode = transaction`) consecutive transactions
 * of one client may run on different server connections, and a session-level lock would stay behind
 * on whichever server connection took it, stalling every later pass.
 *
 * The key is a fixed class (the high 32 bits) and the oid of this schema's `revocation_outbox` (the
 * low 32), so relays of different schemas in one database never contend.
 *
 * Taking it is a statement of its own, before the batch is read: under READ COMMITTED each statement
 * takes a new snapshot, so the read then sees every row the previous holder marked and committed.
 */
const key = (t: Tables) => `((1195922008::bigint << 32) | '${t.revocation_outbox}'::regclass::oid::bigint)`;

export const tryRelayLock = sql<{ locked: boolean }>(
  "gh_relay_try_lock",
  (t) => `SELECT pg_try_advisory_xact_lock(${key(t)}) AS locked`,
);
