/**
 * Embedded Postgres (PGlite) for `gatehouse dev` / `npm start` when DATABASE_URL is unset, and for the
 * schema engine's shadow database when diffing migrations offline.
 *
 * PGlite is a single connection: concurrent transactions serialize. Good for a demo and for schema
 * work; never a stand-in for Postgres in tests of concurrency.
 */
import { mkdir } from "node:fs/promises";
import { PGlite } from "@electric-sql/pglite";
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory } from "@prisma/driver-adapter-utils";
import { PrismaPGlite } from "pglite-prisma-adapter";

export { PGlite };

/**
 * Opens (and creates if needed) a PGlite database: in memory when `dataDir` is undefined, else in that
 * folder (created if missing). Resolves once the database is ready.
 */
export async function openPGlite(dataDir?: string): Promise<PGlite> {
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
export function pgliteAdapterFactory(
  db: PGlite,
  opts: { closeOnDispose?: boolean } = {},
): SqlMigrationAwareDriverAdapterFactory {
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
  const shadow = await openPGlite();
  const adapter = awaitScripts(await new PrismaPGlite(shadow).connect(), shadow);
  const dispose = adapter.dispose.bind(adapter);
  adapter.dispose = async () => {
    await dispose();
    await shadow.close();
  };
  return adapter;
}
