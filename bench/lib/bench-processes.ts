/**
 * Real processes for benchmarks: `gatehouse serve` on a fresh Postgres schema, and helpers to watch
 * a child (readiness over HTTP, VmRSS from /proc). Everything on loopback, every wait bounded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { migrate } from "../../services/shared/database/index.ts";
import { imageAllocator } from "./image-allocator.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process, MB, from /proc/<pid>/status (what the kernel charges it). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** Polls `url` every `everyMs` until it answers 200; rejects at `timeoutMs` or when `child` exits. */
export async function waitForOk(
  url: string,
  child: ChildProcess,
  timeoutMs: number,
  everyMs = 5,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${url}: process exited`);
    if (performance.now() > deadline) throw new Error(`${url} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/**
 * Settings of a `gatehouse serve` whose capacity a benchmark measures, with its database pool sized
 * to `pool` connections. One bench client is the whole load, so the per-client rate limits and
 * in-flight cap are off: they would measure the limits, not the service.
 */
export function capacitySettings(pool: number): Record<string, string> {
  return {
    GATEHOUSE_LOG_LEVEL: "warn",
    GATEHOUSE_DATABASE_POOL_SIZE: String(pool),
    GATEHOUSE_RATE_LIMIT_ISSUE: "off",
    GATEHOUSE_RATE_LIMIT_REFRESH: "off",
    GATEHOUSE_MAX_IN_FLIGHT_PER_CLIENT: "off",
  };
}

export interface TokenServiceProcess {
  child: ChildProcess;
  grpcPort: number;
  httpPort: number;
  /** Stops the process and drops its schema (unless the caller passed its own). */
  stop(): Promise<void>;
}

export interface StartTokenServiceOptions {
  /**
   * A migrated schema the caller owns (and drops): for a bench that prepares rows first and reads
   * them after the service stopped. Default: a fresh bench-only schema, dropped by `stop()`.
   */
  schema?: string;
  /** Node flags for the service process, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  /** Show the service's stdout (its logs) instead of discarding it. */
  showLogs?: boolean;
  /** The checkout whose `bin/gatehouse.mjs` runs (bench/compare-revisions.ts); default this one. */
  root?: string;
}

/** `node bin/gatehouse.mjs serve` on a migrated bench-only schema; resolves once /readyz is 200. */
export async function startTokenService(
  env: Record<string, string> = {},
  options: StartTokenServiceOptions = {},
): Promise<TokenServiceProcess> {
  const ownSchema = options.schema === undefined;
  const schema = options.schema ?? `bench_ts_${randomBytes(4).toString("hex")}`;
  if (ownSchema) await migrate({ kind: "postgres", url: DATABASE_URL, schema });
  const url = new URL(DATABASE_URL);
  url.searchParams.set("schema", schema);
  // Names the service's Postgres backends in pg_stat_activity, so a bench can find their pids.
  url.searchParams.set("application_name", schema);
  const [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "bin/gatehouse.mjs", "serve"], {
    cwd: options.root ?? ROOT,
    env: {
      ...process.env,
      // The image's allocator (image-allocator.ts); a caller's env may set LD_PRELOAD="" for glibc's.
      ...imageAllocator().env,
      DATABASE_URL: url.toString(),
      GATEHOUSE_ISSUER: "https://bench.local",
      GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
      GATEHOUSE_LISTEN: `127.0.0.1:${grpcPort}`,
      GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
      GATEHOUSE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      GATEHOUSE_LOG_LEVEL: "error",
      GATEHOUSE_LOG_PRETTY: "false",
      // Benchmarks measure serving, not propagation: without Redis the service must be told so.
      GATEHOUSE_REVOCATION: (env.REDIS_URL ?? process.env.REDIS_URL) ? "stream" : "none",
      ...env,
    },
    stdio: ["ignore", options.showLogs ? "inherit" : "ignore", "inherit"],
  });
  const dropSchema = async () => {
    if (!ownSchema) return;
    const c = new pg.Client({ connectionString: DATABASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  };
  try {
    await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, child, 30_000, 50);
  } catch (err) {
    await stopProcess(child);
    await dropSchema();
    throw err;
  }
  return {
    child,
    grpcPort,
    httpPort,
    async stop() {
      await stopProcess(child);
      await dropSchema();
    },
  };
}
