import type { PGlite } from "@electric-sql/pglite";
import type pg from "pg";

/**
 * One SQL statement of a hot path. `name` makes it a prepared statement on each pooled Postgres
 * connection, so Postgres parses and plans it once per connection rather than once per call.
 */
export interface SqlStatement<Row> {
  readonly name: string;
  readonly text: string;
  /** Phantom field carrying the row type; never set. */
  readonly row?: Row;
}

export function sql<Row>(name: string, text: string): SqlStatement<Row> {
  return { name, text };
}

/** Runs hot-path statements: on the `pg.Pool` Prisma shares, or on embedded PGlite. */
export interface SqlExecutor {
  query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]): Promise<Row[]>;
}

export function poolExecutor(pool: pg.Pool): SqlExecutor {
  return {
    async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
      const result = await pool.query({
        name: statement.name,
        text: statement.text,
        values: params as unknown[],
      });
      return result.rows as Row[];
    },
  };
}

/** On embedded PGlite, or on one of its transactions (same `query`). */
export function pgliteExecutor(db: Pick<PGlite, "query">): SqlExecutor {
  return {
    async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
      const result = await db.query<Row>(statement.text, params as unknown[]);
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
