import type { PGlite } from "@electric-sql/pglite";
import type pg from "pg";
import { type SqlScope, sqlScopeOf } from "../../shared/database/sql-scope.ts";
import type { SqlStatement } from "../sql/statement.ts";

export { type SqlStatement, sql } from "../sql/statement.ts";

/** Runs hot-path statements: on the `pg.Pool` Prisma shares, or on embedded PGlite. */
export interface SqlExecutor {
  query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]): Promise<Row[]>;
}

/**
 * The pg query for `statement` under `scope`: its text for the scope's schema, and its name only when
 * the scope allows named statements (unnamed ones work through any pooler).
 */
export function queryConfig(
  statement: SqlStatement<unknown>,
  scope: SqlScope,
  params: readonly unknown[],
): pg.QueryConfig {
  return {
    ...(scope.preparedStatements ? { name: statement.name } : {}),
    text: statement.text(scope.schema),
    values: params as unknown[],
  };
}

/** On a pool `createDatabase` made (or one given a scope with `withSqlScope`). */
export function poolExecutor(pool: pg.Pool): SqlExecutor {
  const scope = sqlScopeOf(pool);
  return {
    async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
      const result = await pool.query(queryConfig(statement, scope, params));
      return result.rows as Row[];
    },
  };
}

/** On embedded PGlite, or on one of its transactions (same `query`). */
export function pgliteExecutor(db: Pick<PGlite, "query">): SqlExecutor {
  return {
    async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
      const result = await db.query<Row>(statement.text("public"), params as unknown[]);
      // PGlite returns bytea as Uint8Array; callers compare with Buffer.
      return result.rows.map(toBuffers);
    },
  };
}

function toBuffers<Row>(row: Row): Row {
  for (const [k, v] of Object.entries(row as Record<string, unknown>)) {
    if (v instanceof Uint8Array && !Buffer.isBuffer(v)) (row as Record<string, unknown>)[k] = Buffer.from(v);
  }
  return row;
}
