/**
 * Offline access to Prisma's schema engine through its WebAssembly build (`@prisma/schema-engine-wasm`).
 *
 * `prisma migrate deploy|dev` need the native schema engine, which cannot be downloaded here; the
 * wasm build does the same work through a driver adapter. Nothing here is loaded while serving: the
 * ~5 MB module is compiled on the first call to {@link withSchemaEngine} and kept for the process.
 *
 * Things that are easy to get wrong (found out the hard way):
 * - The package's main entry does `import * as wasm from "./schema_engine_bg.wasm"` (ESM-integration
 *   proposal) which Node cannot load; import `schema_engine_bg.js` instead, instantiate the `.wasm`
 *   with that module as the import object under the key "./schema_engine_bg.js", hand the instance's
 *   exports to `__wbg_set_wasm` and call `__wbindgen_start()`. One instance serves every engine.
 * - The wasm package's `exports` map does not expose the `.wasm` file; resolve the `_bg.js` and take
 *   its sibling.
 * - On a Rust panic the glue calls `global.PRISMA_WASM_PANIC_REGISTRY.set_message(...)`; without that
 *   global the panic turns into an unrelated TypeError. We install one and attach the message.
 * - `SchemaEngine.new(options, log, adapterFactory)`: `options.datamodels` must be `undefined` or a
 *   non-empty list of `[path, content]`; the factory must come from `bindMigrationAwareSqlAdapterFactory`
 *   (the engine reads `{ ok, value | error }` results and looks errors up in its `errorRegistry`).
 * - Engine methods must be called on the engine object (`engine.diff(...)`), never detached.
 * - Errors from the database arrive as a wasm error whose real cause sits in the adapter's error
 *   registry; {@link withSchemaEngine} rethrows the original driver error when it can find it.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  bindMigrationAwareSqlAdapterFactory,
  type SqlMigrationAwareDriverAdapterFactory,
} from "@prisma/driver-adapter-utils";
import type { MigrationDirectory, MigrationList, SchemaEngine } from "@prisma/schema-engine-wasm";

export type { MigrationList, SchemaEngine };

/**
 * The folder holding `prisma/`: the repository root when this runs from services/shared/database/,
 * the image's /app when it runs from a bundle under dist/ (whose depth differs), so it is found by
 * walking up rather than by a fixed number of `..`.
 */
const REPO_ROOT = folderWith(join("prisma", "migrations"), dirname(fileURLToPath(import.meta.url)));
/** The Prisma schema that owns the data model. */
export const SCHEMA_PATH = join(REPO_ROOT, "prisma", "schema.prisma");
/** Committed migrations, one `<timestamp>_<name>/migration.sql` per folder. */
export const MIGRATIONS_DIR = join(REPO_ROOT, "prisma", "migrations");

function folderWith(relativePath: string, from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, relativePath))) return dir;
    if (dirname(dir) === dir) return resolve(from, "../../..");
  }
}

type WasmGlue = typeof import("@prisma/schema-engine-wasm/schema_engine_bg");

interface PanicRegistry {
  set_message(message: string): void;
}

let lastPanic: string | undefined;
let loading: Promise<WasmGlue> | undefined;

function installPanicRegistry(): void {
  const g = globalThis as typeof globalThis & { PRISMA_WASM_PANIC_REGISTRY?: PanicRegistry };
  g.PRISMA_WASM_PANIC_REGISTRY ??= {
    set_message(message: string) {
      lastPanic = message;
    },
  };
}

/** The global WebAssembly API (tsconfig's `lib` has no DOM, so TypeScript does not declare it). */
interface WasmApi {
  instantiate(
    bytes: Uint8Array,
    imports: Record<string, Record<string, unknown>>,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>;
}

function wasmApi(): WasmApi {
  return (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
}

async function instantiate(): Promise<WasmGlue> {
  installPanicRegistry();
  const require = createRequire(import.meta.url);
  const gluePath = require.resolve("@prisma/schema-engine-wasm/schema_engine_bg");
  const glue: WasmGlue = await import("@prisma/schema-engine-wasm/schema_engine_bg");
  const bytes = await readFile(join(dirname(gluePath), "schema_engine_bg.wasm"));
  const { instance } = await wasmApi().instantiate(bytes, {
    "./schema_engine_bg.js": withTrackedTimers(glue as unknown as Record<string, unknown>),
  });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports["__wbindgen_start"] as () => void)();
  return glue;
}

/**
 * Timers the engine started and never cleared. It leaves a 10 s one pending after its last call,
 * which held every process that migrated (`gatehouse dev`'s first start, `gatehouse migrate`) for
 * up to 10 s after it was done; they are cleared once no engine is running.
 */
const engineTimers = new Set<NodeJS.Timeout>();
let runningEngines = 0;

function withTrackedTimers(glue: Record<string, unknown>): Record<string, unknown> {
  const imports = { ...glue };
  for (const [name, fn] of Object.entries(glue)) {
    if (!name.startsWith("__wbg_setTimeout_") || typeof fn !== "function") continue;
    imports[name] = (callback: () => void, ms: number) => {
      const timer: NodeJS.Timeout = fn((...args: unknown[]) => {
        engineTimers.delete(timer);
        (callback as (...a: unknown[]) => void)(...args);
      }, ms);
      engineTimers.add(timer);
      return timer;
    };
  }
  return imports;
}

/** Compiles and starts the wasm module once per process. */
function loadSchemaEngineWasm(): Promise<WasmGlue> {
  loading ??= instantiate().catch((err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

export interface SchemaEngineOptions {
  /** Prisma schema files as `[path, content]`; only the commands that read a datamodel need them. */
  datamodels?: [string, string][];
  /** Receives the engine's log lines (JSON text). */
  log?: (line: string) => void;
}

/**
 * Starts a schema engine on the given driver-adapter factory, runs `fn`, and frees the engine.
 * Connections the engine opened are disposed by the engine; the factory's pool (if the caller passed
 * one in) stays the caller's to close.
 */
export async function withSchemaEngine<T>(
  factory: SqlMigrationAwareDriverAdapterFactory,
  fn: (engine: SchemaEngine) => Promise<T>,
  options: SchemaEngineOptions = {},
): Promise<T> {
  const glue = await loadSchemaEngineWasm();
  const bound = bindMigrationAwareSqlAdapterFactory(factory);
  const datamodels = options.datamodels && options.datamodels.length > 0 ? options.datamodels : undefined;
  const log = options.log ?? (() => {});
  let engine: SchemaEngine | undefined;
  runningEngines++;
  try {
    engine = await glue.SchemaEngine.new({ datamodels }, log, bound);
    return await fn(engine);
  } catch (err) {
    throw unwrapEngineError(err, bound.errorRegistry);
  } finally {
    engine?.free();
    if (--runningEngines === 0) {
      for (const timer of engineTimers) clearTimeout(timer);
      engineTimers.clear();
    }
  }
}

interface ErrorLookup {
  consumeError(id: number): { error: unknown } | undefined;
}

/**
 * The engine reports driver failures as its own error text; the original error (with Postgres' SQLSTATE,
 * constraint name, ...) sits in the adapter's error registry. Attach what we can find.
 */
function unwrapEngineError(err: unknown, registry: ErrorLookup): unknown {
  if (lastPanic !== undefined) {
    const message = lastPanic;
    lastPanic = undefined;
    return new Error(`schema engine panicked: ${message}`, { cause: err });
  }
  if (!(err instanceof Error)) return err;
  // The engine's message names the adapter error as "External error id#<n>".
  const match = /External error id#(\d+)/.exec(err.message);
  if (match) {
    const original = registry.consumeError(Number(match[1]));
    if (original) {
      return new Error(`${err.message}: ${describe(original.error)}`, { cause: original.error });
    }
  }
  return err;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}

/**
 * Reads `prisma/migrations` (or another folder with the same layout) into the shape the engine takes.
 * Folders are sorted by name, which is how Prisma orders them (timestamps first).
 */
export async function readMigrationsList(migrationsDir: string = MIGRATIONS_DIR): Promise<MigrationList> {
  const lockPath = join(migrationsDir, "migration_lock.toml");
  const lockContent = await readFile(lockPath, "utf8").catch(() => null);
  const entries = await readdir(migrationsDir, { withFileTypes: true }).catch(() => []);
  const migrationDirectories: MigrationDirectory[] = [];
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = join(migrationsDir, entry.name, "migration.sql");
    const content = await readFile(file, "utf8").then(
      (value) => ({ tag: "ok" as const, value }),
      (err: unknown) => ({ tag: "error" as const, value: describe(err) }),
    );
    migrationDirectories.push({
      path: entry.name,
      migrationFile: { path: "migration.sql", content },
    });
  }
  return {
    baseDir: migrationsDir,
    lockfile: { path: relative(migrationsDir, lockPath) || "migration_lock.toml", content: lockContent },
    shadowDbInitScript: "",
    migrationDirectories,
  };
}

/** The Prisma schema as the engine's `[path, content]` pairs. */
export async function readDatamodels(schemaPath: string = SCHEMA_PATH): Promise<[string, string][]> {
  return [[schemaPath, await readFile(schemaPath, "utf8")]];
}

/** No schema filter: every table and enum in the target schema is ours. */
export const NO_FILTER = { externalTables: [], externalEnums: [] };
