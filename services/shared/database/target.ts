import type { PGlite } from "@electric-sql/pglite";

/**
 * Where a Gatehouse database lives.
 * - `postgres`: a server; `schema` defaults to the URL's `?schema=` parameter, else `public`.
 * - `pglite` with `dataDir`: embedded Postgres persisted in that folder; without `dataDir`: in memory
 *   (gone when closed).
 * - `pglite` with `db`: an already open PGlite instance; the caller keeps ownership (never closed here).
 */
export type MigrationTarget =
  | { kind: "postgres"; url: string; schema?: string }
  | { kind: "pglite"; dataDir?: string }
  | { kind: "pglite"; db: PGlite };

/** Same thing, under the name the serving code reads better with. */
export type DatabaseTarget = MigrationTarget;
