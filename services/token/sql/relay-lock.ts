import { sql } from "../store/sql-executor.ts";

/**
 * The outbox relay's session advisory lock: one publisher at a time per outbox table, so stream order
 * follows outbox order across replicas. The key is a fixed class (the high 32 bits) and the oid of
 * this schema's `revocation_outbox` (the low 32), so relays of different schemas in one database never
 * contend. Held on one connection for one relay pass; a broken connection releases it.
 *
 * Taking it is a statement of its own, before the batch is read: a statement's snapshot is taken when
 * it starts, so a read in the same statement could predate the previous holder's commit and publish
 * its rows again. Both statements are read-only (no WAL, no commit flush); only marking rows writes.
 */
const KEY = `((1195922008::bigint << 32) | 'revocation_outbox'::regclass::oid::bigint)`;

export const tryRelayLock = sql<{ locked: boolean }>(
  "gh_relay_try_lock",
  `SELECT pg_try_advisory_lock(${KEY}) AS locked`,
);

export const releaseRelayLock = sql<{ released: boolean }>(
  "gh_relay_unlock",
  `SELECT pg_advisory_unlock(${KEY}) AS released`,
);
