import { resolve } from "node:path";
import { connectionFailure, createMigration, migrate, migrationStatus } from "../shared/database/index.ts";
import type { MigrationTarget } from "../shared/database/target.ts";
import { databaseSettings, loadSettings } from "../shared/settings/index.ts";
import { type Command, EXIT_FAILED, EXIT_OK, parseFlags, UsageError } from "./command.ts";

const usage = `Usage: gatehouse migrate [--database-url URL | --pglite DIR] [--status] [--create NAME]

Applies the committed migrations in prisma/migrations that the database has not seen yet. Safe to
run from several replicas at once (they queue on an advisory lock) and to run again (idempotent).

  --database-url URL   Postgres to migrate (default: DATABASE_URL; ?schema=NAME selects a schema)
  --pglite DIR         migrate an embedded PGlite database in DIR instead
  --status             list applied and pending migrations, change nothing (exit 1 if any pending)
  --create NAME        write a new migration from the difference between prisma/schema.prisma
                       and the committed migrations (lower-case letters, digits, _)
  --help               this text`;

function targetFrom(values: { "database-url"?: string; pglite?: string }): MigrationTarget {
  if (values.pglite) return { kind: "pglite", dataDir: resolve(values.pglite) };
  const { databaseUrl } = loadSettings(
    { databaseUrl: databaseSettings.databaseUrl },
    { flags: { "database-url": values["database-url"] } },
  );
  return { kind: "postgres", url: databaseUrl };
}

export const migrateCommand: Command = {
  name: "migrate",
  summary: "Apply pending database migrations (Postgres or embedded PGlite)",
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      "database-url": { type: "string" },
      pglite: { type: "string" },
      status: { type: "boolean" },
      create: { type: "string" },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (values.create !== undefined) {
      const shadowUrl = values["database-url"] ?? process.env.DATABASE_URL;
      // A Postgres shadow is ten times faster than an embedded one; use it when there is one.
      const created = await createMigration(
        values.create,
        shadowUrl ? { shadow: { kind: "postgres", url: shadowUrl } } : {},
      );
      process.stdout.write(
        created ? `created ${created.path}\n` : "schema.prisma matches the migrations: nothing to create\n",
      );
      return EXIT_OK;
    }
    const target = targetFrom(values);
    try {
      return await migrateOrReport(target, values.status === true);
    } catch (err) {
      throw target.kind === "postgres" ? (connectionFailure(err, target.url) ?? err) : err;
    }
  },
};

async function migrateOrReport(target: MigrationTarget, statusOnly: boolean): Promise<number> {
  if (statusOnly) {
    const status = await migrationStatus(target);
    for (const name of status.applied) process.stdout.write(`applied  ${name}\n`);
    for (const name of status.pending) process.stdout.write(`pending  ${name}\n`);
    for (const name of status.failed) process.stdout.write(`FAILED   ${name}\n`);
    return status.current ? EXIT_OK : EXIT_FAILED;
  }
  const { applied } = await migrate(target, { log: (m) => process.stderr.write(`${m}\n`) });
  process.stdout.write(
    applied.length === 0 ? "database is up to date\n" : `applied ${applied.length}: ${applied.join(", ")}\n`,
  );
  return EXIT_OK;
}
