import type { PGlite } from "@electric-sql/pglite";
import type pg from "pg";
import { pgliteExecutor, poolExecutor, type SqlExecutor, type SqlStatement } from "../store/sql-executor.ts";

/**
 * Where the relay runs its statements: any pooled connection for one-off statements, or one connection
 * for a whole relay pass, because the relay's advisory lock belongs to the connection that took it.
 */
export interface OutboxDb extends SqlExecutor {
  /**
   * Runs `fn` with every statement on one connection. When a statement failed on it the connection is
   * destroyed rather than returned to the pool, so a lock it may still hold dies with it.
   */
  withSession<T>(fn: (session: SqlExecutor) => Promise<T>): Promise<T>;
}

/** On the service's `pg.Pool` (the one Prisma shares). */
export function poolOutboxDb(pool: pg.Pool): OutboxDb {
  const any = poolExecutor(pool);
  return {
    query: any.query,
    async withSession(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      const session: SqlExecutor = {
        async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
          try {
            const r = await client.query({
              name: statement.name,
              text: statement.text,
              values: params as unknown[],
            });
            return r.rows as Row[];
          } catch (err) {
            broken = err as Error;
            throw err;
          }
        },
      };
      try {
        return await fn(session);
      } finally {
        client.release(broken ?? false);
      }
    },
  };
}

/**
 * On embedded PGlite: a single connection, so a session is the database itself. Its advisory lock is
 * re-entrant within that one session; the relay serializes its own passes, and PGlite has one process.
 */
export function pgliteOutboxDb(db: PGlite): OutboxDb {
  const executor = pgliteExecutor(db);
  return { query: executor.query, withSession: (fn) => fn(executor) };
}
