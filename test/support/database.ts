/**
 * Per-test-file Postgres schemas. Every test file that touches the database gets its own schema in the
 * `test` database, migrated from prisma/migrations, so files run in parallel without seeing each
 * other's rows:
 *
 * ```ts
 * let tdb: TestDatabase;
 * beforeAll(async () => { tdb = await useTestDatabase(); });
 * afterAll(() => tdb.drop());
 * ```
 *
 * `tdb.db.prisma` is the generated client, `tdb.db.pool` the `pg.Pool` it runs on: the production
 * pool, which sends nothing at connect time (statements name the schema themselves). For the test's
 * own SQL, `tdb.sql` is a small pool whose connections have `search_path` set to the schema, so
 * assertions can name tables unqualified. Set TEST_KEEP_SCHEMAS=1 to keep schemas for a look
 * after the run (`psql -h 127.0.0.1 -U postgres test`, then `SET search_path = t_...`).
 */
import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import pg from "pg";
import { expect } from "vitest";
import { createDatabase, type Database, migrate } from "../../services/shared/database/index.ts";
import { poolConfig } from "../../services/shared/database/postgres.ts";
import { TEST_DATABASE_URL } from "./services.ts";

export interface TestDatabase {
  /** The schema this file owns, `t_<file>_<random>`. */
  schema: string;
  /**
   * DATABASE_URL for this schema (`...?schema=<schema>`): what a spawned service process should get.
   * `pg` ignores the parameter; Gatehouse's database layer reads it.
   */
  url: string;
  /** Prisma client + pool on the schema (see createDatabase). */
  db: Database;
  /** For the test's own SQL: a pool whose `search_path` is the schema (tables unqualified). */
  sql: pg.Pool;
  /** Closes `db` and drops the schema with everything in it. Idempotent. */
  drop(): Promise<void>;
}

/** Turns a label (by default the test file's name) into the `t_<label>_<random>` schema name. */
export function testSchemaName(label?: string): string {
  const source = label ?? fileLabel();
  const cleaned = source
    .toLowerCase()
    .replace(/\.test\.[cm]?[jt]sx?$/, "")
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 40);
  return `t_${cleaned || "db"}_${randomBytes(5).toString("hex")}`;
}

function fileLabel(): string {
  const testPath = expect.getState().testPath;
  return testPath ? basename(testPath) : "db";
}

/**
 * Creates and migrates a fresh schema in the test database (TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test) and connects to it. Call in `beforeAll`, `drop` in `afterAll`.
 */
export async function useTestDatabase(
  name?: string,
  opts: { poolSize?: number } = {},
): Promise<TestDatabase> {
  const schema = testSchemaName(name);
  const base = TEST_DATABASE_URL;
  await migrate({ kind: "postgres", url: base, schema });
  const db = await createDatabase({ kind: "postgres", url: base, schema }, { poolSize: opts.poolSize ?? 5 });
  const sql = new pg.Pool(poolConfig(base, schema, { max: 1 }));
  sql.on("error", () => {});
  const url = new URL(base);
  url.searchParams.set("schema", schema);
  let dropped: Promise<void> | undefined;
  return {
    schema,
    url: url.toString(),
    db,
    sql,
    drop() {
      dropped ??= (async () => {
        await Promise.all([db.close(), sql.end()]);
        if (process.env.TEST_KEEP_SCHEMAS === "1") return;
        await dropSchema(schema);
      })();
      return dropped;
    },
  };
}

/** `DROP SCHEMA IF EXISTS <schema> CASCADE` on the test database. */
export async function dropSchema(schema: string): Promise<void> {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end().catch(() => {});
  }
}
