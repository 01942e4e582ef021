import type { PGlite } from "@electric-sql/pglite";
import type pg from "pg";
import { pgliteExecutor, poolExecutor, type SqlExecutor } from "../store/sql-executor.ts";
import { poolTransactions, type SqlTransactions } from "../store/sql-transaction.ts";

/**
 * Where the relay runs its statements: any pooled connection for one-off statements, or one
 * transaction for a whole relay pass, because the relay's lock is transaction-scoped (a transaction
 * is the unit a transaction-pooling pooler keeps on one server connection).
 */
export interface OutboxDb extends SqlExecutor, SqlTransactions {}

/** On the service's `pg.Pool` (the one Prisma shares). */
export function poolOutboxDb(pool: pg.Pool): OutboxDb {
  return { ...poolExecutor(pool), ...poolTransactions(pool) };
}

/**
 * On embedded PGlite: one connection in one process, so there is no other publisher to exclude and a
 * pass runs its statements one by one (a PGlite transaction would block every other query while the
 * pass waits on the bus).
 */
export function pgliteOutboxDb(db: PGlite): OutboxDb {
  const executor = pgliteExecutor(db);
  return { query: executor.query, transaction: (fn) => fn(executor) };
}
