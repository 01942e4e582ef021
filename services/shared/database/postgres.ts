/**
 * Postgres plumbing shared by the migration runner and the serving client: `pg.Pool` settings (the
 * serving pool sends nothing at connect time; the migrator's sets `search_path`), and Prisma
 * driver-adapter factories over such pools.
 */
import { randomBytes } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory } from "@prisma/driver-adapter-utils";
import pg from "pg";

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Throws unless `schema` is a plain identifier (letters, digits, `_`; at most 63 characters). */
export function assertSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(`invalid Postgres schema name ${JSON.stringify(schema)}: use letters, digits and _`);
  }
  return schema;
}

/** `"name"` for SQL text (the name has already passed {@link assertSchemaName}). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The schema a Postgres target names: explicit `schema`, else the URL's `?schema=` (Prisma's
 * convention), else `public`.
 */
export function schemaOf(url: string, schema?: string): string {
  if (schema !== undefined) return assertSchemaName(schema);
  let fromUrl: string | null = null;
  try {
    fromUrl = new URL(url).searchParams.get("schema");
  } catch {
    // Not a URL (e.g. a libpq key=value string): no schema parameter.
  }
  return assertSchemaName(fromUrl ?? "public");
}

/**
 * pg settings for the serving pool: the URL and nothing sent at connect time, so it works through a
 * transaction pooler (PgBouncer refuses the `options` start-up parameter). Statements name their
 * schema themselves (see sql-scope.ts).
 */
export function servingPoolConfig(url: string, extra: pg.PoolConfig = {}): pg.PoolConfig {
  return { connectionString: url, ...extra };
}

/**
 * pg connection settings for one schema where every connection starts with `search_path = <schema>`
 * (a connect-time option): for the migration runner, whose migration scripts name tables unqualified
 * and which must run on a direct connection anyway, and for tools that poke at one schema by hand.
 */
export function poolConfig(url: string, schema: string, extra: pg.PoolConfig = {}): pg.PoolConfig {
  return {
    connectionString: url,
    ...extra,
    options: `-c search_path=${quoteIdent(assertSchemaName(schema))}`,
  };
}

type AdapterWithOnError = SqlDriverAdapter & { onError?: (error: unknown) => never };

/** What adapter-pg's private `performIO` resolves with (a `pg` result). */
type PerformIO = (query: unknown) => Promise<{ fields: { dataTypeID: number }[] }>;
type PatchableQueryable = { performIO?: PerformIO };

/**
 * Postgres type oids @prisma/adapter-pg 7.10 cannot map to a column type, which the schema engine's
 * introspection queries return (`pg_class.relkind` and friends are `"char"`): the engine then fails
 * with "Column type 'char' could not be deserialized from the database". Their text form is a plain
 * string, so we present them as `text`.
 */
const AS_TEXT = new Map<number, number>([[18 /* "char" */, 25 /* text */]]);

function textForUnmappedTypes<T extends object>(queryable: T): T {
  const q = queryable as PatchableQueryable;
  const perform = q.performIO;
  if (typeof perform !== "function") return queryable;
  q.performIO = async (query: unknown) => {
    const result = await perform.call(queryable, query);
    for (const field of result.fields) {
      const replacement = AS_TEXT.get(field.dataTypeID);
      if (replacement !== undefined) field.dataTypeID = replacement;
    }
    return result;
  };
  return queryable;
}

/** Applies {@link textForUnmappedTypes} to an adapter and to every transaction it starts. */
function introspectable(adapter: SqlDriverAdapter): SqlDriverAdapter {
  textForUnmappedTypes(adapter);
  const start = adapter.startTransaction.bind(adapter);
  adapter.startTransaction = async (...args) => textForUnmappedTypes(await start(...args));
  return adapter;
}

/**
 * @prisma/adapter-pg 7.10's `executeScript` splits the script on every `;` (breaking `;` inside string
 * literals and function bodies) and sends the pieces one by one through the pool. We send the whole
 * script as one simple-protocol query on one connection instead: Postgres runs a multi-statement
 * query string as one implicit transaction, so a migration applies completely or not at all.
 * (Consequence: a migration cannot contain statements that refuse to run in a transaction, such as
 * `CREATE INDEX CONCURRENTLY`.)
 */
function wholeScripts(adapter: SqlDriverAdapter, pool: pg.Pool): SqlDriverAdapter {
  const withOnError = adapter as AdapterWithOnError;
  adapter.executeScript = async (script: string) => {
    try {
      await pool.query(script);
    } catch (error) {
      if (withOnError.onError) withOnError.onError.call(adapter, error);
      throw error;
    }
  };
  return adapter;
}

/** A fresh name for a throwaway shadow schema. */
export function shadowSchemaName(): string {
  return `prisma_shadow_${randomBytes(6).toString("hex")}`;
}

/**
 * A migration-aware adapter factory on an existing pool (the caller owns and ends the pool). Its
 * shadow database, which the schema engine needs to replay migrations when diffing, is a throwaway
 * schema `prisma_shadow_<random>` in the same database, dropped when the engine disposes it: cheaper
 * than the `CREATE DATABASE` upstream does, and needs no CREATEDB privilege.
 *
 * The engine compares schemas namespace by namespace, and names the datamodel's namespace after the
 * main connection's schema: for a migrations → datamodel diff, make `schema` and `opts.shadowSchema`
 * the same throwaway name (see `diffMigrationsAgainstSchema`), or everything shows up as drift.
 */
export function postgresAdapterFactory(
  pool: pg.Pool,
  url: string,
  schema: string,
  opts: { shadowSchema?: string } = {},
): SqlMigrationAwareDriverAdapterFactory {
  const inner = new PrismaPg(pool, { schema });
  return {
    provider: inner.provider,
    adapterName: inner.adapterName,
    async connect() {
      return introspectable(wholeScripts(await inner.connect(), pool));
    },
    async connectToShadowDb() {
      const shadowSchema = assertSchemaName(opts.shadowSchema ?? shadowSchemaName());
      const shadowPool = new pg.Pool(poolConfig(url, shadowSchema, { max: 2 }));
      shadowPool.on("error", () => {});
      // IF NOT EXISTS: when diffing, the main connection reports the same schema name and the engine
      // may already have created it through that connection.
      await shadowPool.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(shadowSchema)}`);
      const adapter = introspectable(
        wholeScripts(await new PrismaPg(shadowPool, { schema: shadowSchema }).connect(), shadowPool),
      );
      const dispose = adapter.dispose.bind(adapter);
      adapter.dispose = async () => {
        await dispose();
        try {
          await shadowPool.query(`DROP SCHEMA IF EXISTS ${quoteIdent(shadowSchema)} CASCADE`);
        } finally {
          await shadowPool.end();
        }
      };
      return adapter;
    },
  };
}
