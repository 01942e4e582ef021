/**
 * Embedded Postgres (PGlite) for `gatehouse dev` / `npm start` when DATABASE_URL is unset, and for the
 * schema engine's shadow database when diffing migrations offline.
 *
 * PGlite is a single connection: concurrent transactions serialize. Good for a demo and for schema
 * work; never a stand-in for Postgres in tests of concurrency.
 */
import { mkdir } from "node:fs/promises";
import type { PGlite } from "@electric-sql/pglite";
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory } from "@prisma/driver-adapter-utils";
import { SettingsError } from "../settings/settings.ts";

export type { PGlite };

interface PGliteModules {
  PGlite: typeof import("@electric-sql/pglite").PGlite;
  PrismaPGlite: typeof import("pglite-prisma-adapter").PrismaPGlite;
}

let loading: Promise<PGliteModules> | undefined;

/**
 * PGlite and its Prisma adapter are development dependencies (the demo database of `gatehouse dev`,
 * the shadow database of `migrate --create`): they load only when asked for, so `serve` and
 * `migrate` on Postgres run without them, as they do in the image.
 */
function loadPGlite(): Promise<PGliteModules> {
  loading ??= Promise.all([import("@electric-sql/pglite"), import("pglite-prisma-adapter")]).then(
    ([pglite, adapter]) => ({ PGlite: pglite.PGlite, PrismaPGlite: adapter.PrismaPGlite }),
    (err: unknown) => {
      loading = undefined;
      if ((err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
      throw new SettingsError(
        "DATABASE_URL",
        "unset, and the embedded database (PGlite, a development dependency) is not installed here: set DATABASE_URL to a Postgres URL",
      );
    },
  );
  return loading;
}

/**
 * Opens (and creates if needed) a PGlite database: in memory when `dataDir` is undefined, else in that
 * folder (created if missing). Resolves once the database is ready.
 */
export async function openPGlite(dataDir?: string): Promise<PGlite> {
  const { PGlite } = await loadPGlite();
  if (dataDir !== undefined && !dataDir.includes("://")) await mkdir(dataDir, { recursive: true });
  const db = new PGlite(dataDir === undefined ? undefined : { dataDir });
  await db.waitReady;
  return db;
}

type AdapterWithOnError = SqlDriverAdapter & { onError?: (error: unknown) => never };

/**
 * pglite-prisma-adapter 0.7.2's `executeScript` calls `client.exec(script)` without awaiting it: the
 * engine would record a failed migration as applied and the error would surface later as an unhandled
 * rejection. Await it and convert the error the way the adapter converts query errors.
 */
function awaitScripts(adapter: SqlDriverAdapter, db: PGlite): SqlDriverAdapter {
  const withOnError = adapter as AdapterWithOnError;
  adapter.executeScript = async (script: string) => {
    try {
      await db.exec(script);
    } catch (error) {
      if (withOnError.onError) withOnError.onError.call(adapter, error);
      throw error;
    }
  };
  return adapter;
}

/**
 * A migration-aware Prisma driver-adapter factory on one PGlite database. Its shadow database (used
 * by the schema engine to replay migrations when diffing) is a fresh in-memory PGlite, closed when the
 * engine disposes it (the upstream factory never closes its shadow instances). With `closeOnDispose`,
 * disposing the main adapter (Prisma's `$disconnect()`) also closes `db`.
 */
export async function pgliteAdapterFactory(
  db: PGlite,
  opts: { closeOnDispose?: boolean } = {},
): Promise<SqlMigrationAwareDriverAdapterFactory> {
  const { PrismaPGlite } = await loadPGlite();
  const inner = new PrismaPGlite(db);
  return {
    provider: inner.provider,
    adapterName: inner.adapterName,
    async connect() {
      const adapter = awaitScripts(await inner.connect(), db);
      if (opts.closeOnDispose) {
        const dispose = adapter.dispose.bind(adapter);
        adapter.dispose = async () => {
          await dispose();
          await db.close();
        };
      }
      return adapter;
    },
    connectToShadowDb: pgliteShadowAdapter,
  };
}

/** A fresh in-memory PGlite as a schema-engine shadow database, closed when the engine disposes it. */
export async function pgliteShadowAdapter(): Promise<SqlDriverAdapter> {
  const { PrismaPGlite } = await loadPGlite();
  const shadow = await openPGlite();
  const adapter = awaitScripts(await new PrismaPGlite(shadow).connect(), shadow);
  const dispose = adapter.dispose.bind(adapter);
  adapter.dispose = async () => {
    await dispose();
    await shadow.close();
  };
  return adapter;
}
