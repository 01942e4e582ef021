/**
 * Database layer: schema (prisma/schema.prisma), migrations (prisma/migrations), the offline migration
 * runner, and the serving handle (generated Prisma client + the `pg.Pool` hot paths share with it).
 *
 * Serving code needs only `createDatabase` (and `migrationStatus` for readiness); the wasm schema
 * engine behind `migrate` / `diffMigrationsAgainstSchema` / `createMigration` loads on first use.
 */
export { connectionFailure } from "./database-failure.ts";
export { checkDatabase } from "./database-preflight.ts";
export {
  createMigration,
  diffMigrationsAgainstSchema,
  MIGRATION_LOCK_KEY,
  migrate,
  migrationStatus,
  pendingMigrations,
  type ShadowTarget,
} from "./migrate.ts";
export { openPGlite, type PGlite } from "./pglite.ts";
export {
  createDatabase,
  type Database,
} from "./prisma-client.ts";
export { MIGRATIONS_DIR, SCHEMA_PATH } from "./schema-engine.ts";

export type { DatabaseTarget, MigrationTarget } from "./target.ts";
