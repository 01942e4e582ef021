/**
 * Offline migration runner: applies `prisma/migrations/*\/migration.sql` exactly as
 * `prisma migrate deploy` would (same `_prisma_migrations` bookkeeping), through Prisma's wasm schema
 * engine and a driver adapter, on Postgres or on embedded PGlite. Also: migration status for readiness
 * probes (plain SQL, no engine), and the drift diff / new-migration writer behind
 * `gatehouse migrate --create <name>`.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import pg from "pg";
import { openPGlite, type PGlite, pgliteAdapterFactory, pgliteShadowAdapter } from "./pglite.ts";
import {
  assertSchemaName,
  poolConfig,
  postgresAdapterFactory,
  quoteIdent,
  schemaOf,
  shadowSchemaName,
} from "./postgres.ts";
import type { Database } from "./prisma-client.ts";
import {
  MIGRATIONS_DIR,
  type MigrationList,
  NO_FILTER,
  readDatamodels,
  readMigrationsList,
  SCHEMA_PATH,
  withSchemaEngine,
} from "./schema-engine.ts";
import type { MigrationTarget } from "./target.ts";

/**
 * Session-level advisory lock held (on the runner's own connection) while migrating a Postgres
 * database, so replicas starting together apply each migration once and never race. The key is the
 * ASCII of "gatemigr" read as a big-endian int64 (0x676174656d696772). It is database-wide: migrations
 * of different schemas in one database queue behind each other too. (Prisma's engine additionally
 * takes its own lock, 72707369, through the adapter's pool.)
 */
export const MIGRATION_LOCK_KEY = 7449363237623654258n;

export interface MigrateOptions {
  /** Progress messages ("waiting for the migration lock", "applied <name>", ...). */
  log?: (msg: string) => void;
  /** Folder of committed migrations (default: prisma/migrations of this repository). */
  migrationsDir?: string;
  /** Postgres: give up waiting for the migration lock after this long (default 120 s). */
  lockTimeoutMs?: number;
}

export interface MigrateResult {
  /** Names of the migrations this call applied, in order; empty when the database was current. */
  applied: string[];
}

/**
 * Brings the target's schema up to the committed migrations. Idempotent; safe to run concurrently from
 * several processes against one Postgres (advisory lock). Creates the Postgres schema if missing.
 */
export async function migrate(target: MigrationTarget, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const log = opts.log ?? (() => {});
  const migrationsList = await readMigrationsList(opts.migrationsDir);
  const committed = committedOf(migrationsList);
  if (target.kind === "postgres") {
    return migratePostgres(target.url, schemaOf(target.url, target.schema), migrationsList, committed, opts);
  }
  return withPGliteTarget(target, (db) =>
    serialized(db, async () => {
      const status = statusFromRows(await pgliteMigrationRows(db), committed);
      if (status.pending.length === 0 && status.failed.length === 0) return { applied: [] };
      return applyWithEngine(await pgliteAdapterFactory(db), migrationsList, log);
    }),
  );
}

async function migratePostgres(
  url: string,
  schema: string,
  migrationsList: MigrationList,
  committed: Committed,
  opts: MigrateOptions,
): Promise<MigrateResult> {
  const log = opts.log ?? (() => {});
  const lockClient = new pg.Client({ connectionString: url });
  lockClient.on("error", () => {});
  await lockClient.connect();
  try {
    const lockTimeoutMs = Math.max(1, Math.round(opts.lockTimeoutMs ?? 120_000));
    await lockClient.query(`SET lock_timeout = ${lockTimeoutMs}`);
    const lock = await lockClient.query<{ got: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS got", [
      MIGRATION_LOCK_KEY.toString(),
    ]);
    if (!lock.rows[0]?.got) {
      log("waiting for the migration lock (another process is migrating)");
      try {
        await lockClient.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY.toString()]);
      } catch (err) {
        if ((err as { code?: string }).code !== "55P03") throw err;
        throw new Error(
          `gave up after ${lockTimeoutMs} ms waiting for the migration lock (pg_advisory_lock ${MIGRATION_LOCK_KEY}); ` +
            "another process is migrating or hung: see pg_locks where locktype = 'advisory'",
          { cause: err },
        );
      }
    }
    try {
      await lockClient.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
      // Cheap check first: a replica that finds nothing to do never starts the wasm engine.
      const rows = await postgresMigrationRows(lockClient, schema);
      const status = statusFromRows(rows, committed);
      if (status.pending.length === 0 && status.failed.length === 0) return { applied: [] };
      const pool = new pg.Pool(poolConfig(url, schema, { max: 2 }));
      pool.on("error", () => {});
      try {
        return await applyWithEngine(postgresAdapterFactory(pool, url, schema), migrationsList, log);
      } finally {
        await pool.end();
      }
    } finally {
      await lockClient
        .query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY.toString()])
        .catch(() => {});
    }
  } finally {
    await lockClient.end().catch(() => {});
  }
}

async function applyWithEngine(
  factory: Parameters<typeof withSchemaEngine>[0],
  migrationsList: MigrationList,
  log: (msg: string) => void,
): Promise<MigrateResult> {
  const out = await withSchemaEngine(factory, (engine) =>
    engine.applyMigrations({ migrationsList, filters: NO_FILTER }),
  );
  for (const name of out.appliedMigrationNames) log(`applied ${name}`);
  return { applied: out.appliedMigrationNames };
}

// ---------------------------------------------------------------------------------------------------
// Status (plain SQL on `_prisma_migrations`; readiness probes call this, so no wasm engine here)

export interface MigrationStatus {
  /** Migration folders committed in this build, in order. */
  committed: string[];
  /** Committed migrations recorded as finished in the database. */
  applied: string[];
  /** Committed migrations not applied yet. */
  pending: string[];
  /** Migrations recorded as started but neither finished nor rolled back (needs a human). */
  failed: string[];
  /** Finished migrations the database knows but this build does not (a newer build migrated it). */
  unknown: string[];
  /** Applied migrations whose migration.sql changed since (checksum differs): someone edited history. */
  edited: string[];
  /** Nothing pending, nothing failed: the schema matches this build's migrations. */
  current: boolean;
}

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished: boolean;
  rolled_back: boolean;
}

const MIGRATION_ROWS_SQL = `SELECT migration_name, checksum, finished_at IS NOT NULL AS finished,
  rolled_back_at IS NOT NULL AS rolled_back FROM _prisma_migrations`;

async function postgresMigrationRows(
  client: pg.ClientBase | pg.Pool,
  schema: string,
): Promise<MigrationRow[]> {
  const table = await client.query<{ present: boolean }>("SELECT to_regclass($1) IS NOT NULL AS present", [
    `${quoteIdent(assertSchemaName(schema))}._prisma_migrations`,
  ]);
  if (!table.rows[0]?.present) return [];
  const sql = MIGRATION_ROWS_SQL.replace("_prisma_migrations", `${quoteIdent(schema)}._prisma_migrations`);
  return (await client.query<MigrationRow>(sql)).rows;
}

async function pgliteMigrationRows(db: PGlite): Promise<MigrationRow[]> {
  const table = await db.query<{ present: boolean }>(
    "SELECT to_regclass('public._prisma_migrations') IS NOT NULL AS present",
  );
  if (!table.rows[0]?.present) return [];
  return (await db.query<MigrationRow>(MIGRATION_ROWS_SQL)).rows;
}

/** Committed migrations: folder name → SHA-256 (hex) of its migration.sql, as Prisma records it. */
type Committed = Map<string, string>;

function committedOf(list: MigrationList): Committed {
  return new Map(
    list.migrationDirectories.map((d) => [
      d.path,
      d.migrationFile.content.tag === "ok"
        ? createHash("sha256").update(d.migrationFile.content.value).digest("hex")
        : "",
    ]),
  );
}

function statusFromRows(rows: MigrationRow[], committedSums: Committed): MigrationStatus {
  const committed = [...committedSums.keys()];
  const done = rows.filter((r) => r.finished && !r.rolled_back);
  const finished = new Set(done.map((r) => r.migration_name));
  const edited = [
    ...new Set(
      done
        .filter(
          (r) => committedSums.has(r.migration_name) && committedSums.get(r.migration_name) !== r.checksum,
        )
        .map((r) => r.migration_name),
    ),
  ];
  const failed = [
    ...new Set(
      rows
        .filter((r) => !r.finished && !r.rolled_back && !finished.has(r.migration_name))
        .map((r) => r.migration_name),
    ),
  ];
  const known = new Set(committed);
  const applied = committed.filter((name) => finished.has(name));
  const pending = committed.filter((name) => !finished.has(name));
  const unknown = [...finished].filter((name) => !known.has(name)).sort();
  return {
    committed,
    applied,
    pending,
    failed,
    unknown,
    edited,
    current: pending.length === 0 && failed.length === 0,
  };
}

/**
 * Which committed migrations the database has applied, which are pending or failed. Takes a target
 * (opens and closes its own connection) or an open {@link Database} (uses its pool / PGlite: prefer
 * this for readiness probes, and always for a PGlite folder that is already open).
 */
export async function migrationStatus(
  target: MigrationTarget | Database,
  opts: {
    migrationsDir?: string /** Postgres URL targets: give up connecting after this long. */;
    connectTimeoutMs?: number;
  } = {},
): Promise<MigrationStatus> {
  const committed = committedOf(await readMigrationsList(opts.migrationsDir));
  if ("prisma" in target) {
    if (target.pool)
      return statusFromRows(await postgresMigrationRows(target.pool, target.schema), committed);
    if (target.pglite) return statusFromRows(await pgliteMigrationRows(target.pglite), committed);
    throw new Error("database handle has neither a pool nor a PGlite instance");
  }
  if (target.kind === "postgres") {
    const client = new pg.Client({
      connectionString: target.url,
      ...(opts.connectTimeoutMs === undefined ? {} : { connectionTimeoutMillis: opts.connectTimeoutMs }),
    });
    client.on("error", () => {});
    await client.connect();
    try {
      return statusFromRows(
        await postgresMigrationRows(client, schemaOf(target.url, target.schema)),
        committed,
      );
    } finally {
      await client.end().catch(() => {});
    }
  }
  return withPGliteTarget(target, async (db) => statusFromRows(await pgliteMigrationRows(db), committed));
}

/** Names of committed migrations the target has not applied (empty = "migrations current"). */
export async function pendingMigrations(
  target: MigrationTarget | Database,
  opts: { migrationsDir?: string } = {},
): Promise<string[]> {
  return (await migrationStatus(target, opts)).pending;
}

// ---------------------------------------------------------------------------------------------------
// Drift and new migrations

/**
 * Where the schema engine replays the committed migrations to compare them with the schema:
 * - `postgres`: a throwaway schema `prisma_shadow_<random>` in that database, dropped afterwards (fast);
 * - `pglite`: a fresh in-memory PGlite (no server needed; a few seconds to start).
 */
export type ShadowTarget = { kind: "postgres"; url: string } | { kind: "pglite" };

export interface DiffOptions {
  /** Default `{ kind: "pglite" }`. */
  shadow?: ShadowTarget;
  /** Prisma schema file (default prisma/schema.prisma). */
  schemaPath?: string;
  /** Use this datamodel text instead of reading `schemaPath` (tests, tooling). */
  datamodel?: string;
  migrationsDir?: string;
}

const EMPTY_MIGRATION = /^\s*(--\s*This is an empty migration\.?\s*)?$/;

/**
 * The SQL that would take a database built from the committed migrations to prisma/schema.prisma;
 * "" when they are in sync. The drift test asserts it is empty.
 */
export async function diffMigrationsAgainstSchema(opts: DiffOptions = {}): Promise<string> {
  const schemaPath = opts.schemaPath ?? SCHEMA_PATH;
  const datamodels: [string, string][] =
    opts.datamodel !== undefined ? [[schemaPath, opts.datamodel]] : await readDatamodels(schemaPath);
  const migrationsList = await readMigrationsList(opts.migrationsDir);
  const run = (factory: Parameters<typeof withSchemaEngine>[0]) =>
    withSchemaEngine(
      factory,
      (engine) =>
        engine.diff({
          from: { tag: "migrations", ...migrationsList },
          to: { tag: "schemaDatamodel", files: datamodels.map(([path, content]) => ({ path, content })) },
          script: true,
          exitCode: null,
          filters: NO_FILTER,
        }),
      { datamodels },
    );
  const shadow = opts.shadow ?? { kind: "pglite" };
  let out: Awaited<ReturnType<typeof run>>;
  if (shadow.kind === "postgres") {
    // Main and shadow connection share one throwaway schema name (see postgresAdapterFactory).
    const shadowSchema = shadowSchemaName();
    const pool = new pg.Pool(poolConfig(shadow.url, shadowSchema, { max: 2 }));
    pool.on("error", () => {});
    try {
      out = await run(postgresAdapterFactory(pool, shadow.url, shadowSchema, { shadowSchema }));
    } finally {
      // The engine drops nothing when it fails half-way; the schema name is ours, so clean up here.
      try {
        await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdent(shadowSchema)} CASCADE`);
      } finally {
        await pool.end();
      }
    }
  } else {
    // The engine wants a "main" connection too; a migrations → datamodel diff only uses the shadow
    // one, so the main in-memory database is opened only if the engine asks for it.
    let main: PGlite | undefined;
    const factory = {
      provider: "postgres" as const,
      adapterName: "gatehouse-pglite",
      async connect() {
        main ??= await openPGlite();
        return (await pgliteAdapterFactory(main)).connect();
      },
      connectToShadowDb: pgliteShadowAdapter,
    };
    try {
      out = await run(factory);
    } finally {
      await main?.close();
    }
  }
  const sql = out.stdout ?? "";
  return EMPTY_MIGRATION.test(sql) ? "" : sql;
}

export interface CreatedMigration {
  /** Folder name, `<yyyymmddhhmmss>_<name>`. */
  name: string;
  /** Absolute path of the new migration.sql. */
  path: string;
  sql: string;
}

/**
 * Writes `prisma/migrations/<utc timestamp>_<name>/migration.sql` with the SQL that takes the committed
 * migrations to prisma/schema.prisma (what `prisma migrate dev --create-only` would write). Returns null
 * and writes nothing when there is no difference. Review the SQL before committing it.
 */
export async function createMigration(
  name: string,
  opts: DiffOptions = {},
): Promise<CreatedMigration | null> {
  if (!/^[a-z0-9][a-z0-9_]*$/.test(name)) {
    throw new Error(`migration name ${JSON.stringify(name)}: use lower-case letters, digits and _`);
  }
  const migrationsDir = resolve(opts.migrationsDir ?? MIGRATIONS_DIR);
  // The engine reads the provider from the lock file; the very first migration has to create it.
  const lockPath = join(migrationsDir, "migration_lock.toml");
  if ((await readFile(lockPath, "utf8").catch(() => null)) === null) {
    await mkdir(migrationsDir, { recursive: true });
    await writeFile(lockPath, MIGRATION_LOCK_TOML);
  }
  const sql = await diffMigrationsAgainstSchema({ ...opts, migrationsDir });
  if (sql === "") return null;
  const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const folder = `${stamp}_${name}`;
  await mkdir(join(migrationsDir, folder), { recursive: true });
  const path = join(migrationsDir, folder, "migration.sql");
  await writeFile(path, sql.endsWith("\n") ? sql : `${sql}\n`, { flag: "wx" });
  return { name: folder, path, sql };
}

const MIGRATION_LOCK_TOML = `# Please do not edit this file manually
# It should be added in your version-control system (e.g., Git)
provider = "postgresql"
`;

// ---------------------------------------------------------------------------------------------------
// PGlite helpers

async function withPGliteTarget<T>(
  target: Extract<MigrationTarget, { kind: "pglite" }>,
  fn: (db: PGlite) => Promise<T>,
): Promise<T> {
  if ("db" in target) return fn(target.db);
  const key = target.dataDir === undefined ? undefined : resolve(target.dataDir);
  const run = async () => {
    const db = await openPGlite(target.dataDir);
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  };
  // Two PGlite instances on one folder would corrupt it: one at a time per folder in this process.
  return key === undefined ? run() : serialized(key, run);
}

const queues = new Map<unknown, Promise<unknown>>();

/** Runs `fn` after every earlier call with the same key has settled (PGlite is one connection). */
function serialized<T>(key: unknown, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const next = previous.then(fn, fn);
  const settled = next.then(
    () => {},
    () => {},
  );
  queues.set(key, settled);
  void settled.then(() => {
    if (queues.get(key) === settled) queues.delete(key);
  });
  return next;
}
