/**
 * The serving-side database handle: the generated Prisma client for cold paths plus, on Postgres, the
 * very `pg.Pool` it runs on, so hot paths issue raw SQL on the same connections (one pool per process).
 *
 * `PrismaPg` accepts an existing `pg.Pool` (and then does not end it on `$disconnect()`), so we build
 * the pool ourselves and hand it to the adapter with `{ schema }`, which makes Prisma's own queries
 * schema-qualified. The pool sends nothing at connect time (no `search_path` option), so it works
 * through a transaction pooler; raw SQL names the schema itself, from the {@link SqlScope} recorded on
 * the pool and on the Prisma client.
 *
 * Does not load the wasm schema engine.
 */
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../../gen/prisma/client.ts";
import { openPGlite, type PGlite, pgliteAdapterFactory } from "./pglite.ts";
import { schemaOf, servingPoolConfig } from "./postgres.ts";
import { type SqlScope, withSqlScope } from "./sql-scope.ts";
import type { DatabaseTarget } from "./target.ts";

export interface Database {
  /** Generated Prisma client (cold paths, admin, tests). */
  prisma: PrismaClient;
  /** Postgres only: the pool Prisma runs on, for hot-path raw SQL (its {@link SqlScope} is recorded). */
  pool?: pg.Pool;
  /** PGlite only: the embedded database (one connection; queries serialize). */
  pglite?: PGlite;
  /** Postgres schema (`public` on PGlite). */
  schema: string;
  /** Disconnects Prisma, ends the pool, closes a PGlite this call opened. Idempotent. */
  close(): Promise<void>;
}

export interface CreateDatabaseOptions {
  /** Maximum connections in the Postgres pool (default 10). Ignored on PGlite. */
  poolSize?: number;
  /** Extra `pg.Pool` settings (timeouts, application_name, ...). */
  pool?: Omit<pg.PoolConfig, "connectionString" | "options" | "max">;
  /**
   * Send hot-path statements as named prepared statements (default true). Off behind a pooler that
   * cannot keep them (PgBouncer before 1.21 in transaction mode). Ignored on PGlite.
   */
  preparedStatements?: boolean;
}

/** PGlite has one schema and one connection: nothing to name, nothing to share. */
const PGLITE_SCOPE: SqlScope = { schema: "public", preparedStatements: true };

/** Connects to a migrated database. Migrations are not run here: see `migrate()`. */
export async function createDatabase(
  target: DatabaseTarget,
  opts: CreateDatabaseOptions = {},
): Promise<Database> {
  if (target.kind === "postgres") {
    const schema = schemaOf(target.url, target.schema);
    const scope: SqlScope = { schema, preparedStatements: opts.preparedStatements ?? true };
    const pool = withSqlScope(
      new pg.Pool(servingPoolConfig(target.url, { ...opts.pool, max: opts.poolSize ?? 10 })),
      scope,
    );
    // An idle client losing its connection must not crash the process; the pool replaces it.
    pool.on("error", () => {});
    const prisma = withSqlScope(new PrismaClient({ adapter: new PrismaPg(pool, { schema }) }), scope);
    let closed: Promise<void> | undefined;
    return {
      prisma,
      pool,
      schema,
      close() {
        closed ??= (async () => {
          try {
            await prisma.$disconnect();
          } finally {
            await pool.end();
          }
        })();
        return closed;
      },
    };
  }
  const owned = !("db" in target);
  const db = "db" in target ? target.db : await openPGlite(target.dataDir);
  const prisma = withSqlScope(new PrismaClient({ adapter: await pgliteAdapterFactory(db) }), PGLITE_SCOPE);
  let closed: Promise<void> | undefined;
  return {
    prisma,
    pglite: db,
    schema: "public",
    close() {
      closed ??= (async () => {
        try {
          await prisma.$disconnect();
        } finally {
          if (owned) await db.close();
        }
      })();
      return closed;
    },
  };
}
