import type { PGlite } from "@electric-sql/pglite";
import type pg from "pg";
import { sqlScopeOf } from "../../shared/database/sql-scope.ts";
import { pgliteExecutor, queryConfig, type SqlExecutor, type SqlStatement } from "./sql-executor.ts";

/**
 * Runs statements inside one transaction (BEGIN … COMMIT on one connection; ROLLBACK when `fn`
 * throws). Behind a transaction-pooling pooler this is the unit that stays on one server connection,
 * so anything that must hold between statements (an advisory lock) is scoped to it.
 */
export interface SqlTransactions {
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
}

/** On the service's `pg.Pool`. A connection whose ROLLBACK failed is destroyed, not reused. */
export function poolTransactions(pool: pg.Pool): SqlTransactions {
  const scope = sqlScopeOf(pool);
  return {
    async transaction(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      const tx: SqlExecutor = {
        async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
          const r = await client.query(queryConfig(statement, scope, params));
          return r.rows as Row[];
        },
      };
      try {
        await client.query("BEGIN");
        const result = await fn(tx);
        await client.query("COMMIT");
        return result;
      } catch (err) {
        await client.query("ROLLBACK").catch((rollbackErr: Error) => {
          broken = rollbackErr;
        });
        throw err;
      } finally {
        client.release(broken ?? false);
      }
    },
  };
}

/** On embedded PGlite, through its own transaction wrapper. */
export function pgliteTransactions(db: PGlite): SqlTransactions {
  return {
    transaction: (fn) => db.transaction((tx) => fn(pgliteExecutor(tx))),
  };
}
