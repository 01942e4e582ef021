/**
 * P8: the token service's start and idle footprint on the compiled runtime the images run
 * (GATEHOUSE_RUNTIME=dist, `npm run build`), beside the same service through tsx (the checkout's
 * default) in the same run.
 *
 *   npx tsx bench/startup.ts [--starts 5]
 *
 * - ready_ms: spawn of `node bin/gatehouse.mjs serve` to the first 200 from /readyz (polled every
 *   5 ms), on a migrated Postgres schema with its signing and refresh keys already made (one unmeasured
 *   start first); median of `--starts` starts per runtime, the runtimes alternating so both see the
 *   same load.
 * - cpu_to_ready_ms: the process's CPU time (utime + stime, all threads) at that moment: the start's
 *   cost, which load on the machine does not inflate the way it does wall time.
 * - rss_idle_mb: VmRSS two seconds after ready (no requests, no forced GC), for the median start.
 * - serve_help_ms: spawn of `serve --help` to its exit, median of `--starts`.
 * Limits: ready <= 1 s and idle RSS <= 120 MB for the compiled runtime; tsx's figures are the peer.
 * `--duration` and `--concurrency` are accepted and ignored (nothing here is timed load).
 * Writes bench/results/startup.json.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import pg from "pg";
import { buildDist } from "../scripts/build.mjs";
import { migrate } from "../services/shared/database/index.ts";
import { benchArgs } from "./lib/bench-args.ts";
import { DATABASE_URL, freePort, ROOT, rssMb, stopProcess, waitForOk } from "./lib/bench-processes.ts";
import { report, row } from "./lib/bench-results.ts";
import { imageAllocator } from "./lib/image-allocator.ts";
import { processCpuMicros } from "./lib/process-cpu.ts";

const args = benchArgs("npx tsx bench/startup.ts [flags]", { starts: 5, duration: 0, concurrency: 0 });

type Runtime = "dist" | "tsx";
const RUNTIMES: Runtime[] = ["dist", "tsx"];

interface Start {
  readyMs: number;
  cpuMs: number;
  rssMb: number;
}

function median<T>(items: T[], key: (t: T) => number): T {
  return [...items].sort((a, b) => key(a) - key(b))[Math.floor((items.length - 1) / 2)]!;
}

function spawnGatehouse(runtime: Runtime, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ["bin/gatehouse.mjs", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...imageAllocator().env, ...env, GATEHOUSE_RUNTIME: runtime },
    stdio: ["ignore", "ignore", "inherit"],
  });
}

async function startServe(runtime: Runtime, env: Record<string, string>): Promise<Start> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const t0 = performance.now();
  const child = spawnGatehouse(runtime, ["serve"], {
    ...env,
    GATEHOUSE_LISTEN: `127.0.0.1:${grpcPort}`,
    GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
  });
  try {
    await waitForOk(`http://127.0.0.1:${httpPort}/readyz`, child, 60_000);
    const readyMs = performance.now() - t0;
    const cpuMs = (processCpuMicros(child.pid!) ?? Number.NaN) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    return { readyMs, cpuMs, rssMb: rssMb(child.pid!) };
  } finally {
    await stopProcess(child);
  }
}

async function helpMs(runtime: Runtime): Promise<number> {
  const t0 = performance.now();
  const child = spawnGatehouse(runtime, ["serve", "--help"]);
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  if (code !== 0) throw new Error(`serve --help (${runtime}) exited with ${code}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const starts = Math.max(1, Math.floor(args.starts));
  const build = await buildDist();
  const schema = `bench_start_${randomBytes(4).toString("hex")}`;
  await migrate({ kind: "postgres", url: DATABASE_URL, schema });
  const url = new URL(DATABASE_URL);
  url.searchParams.set("schema", schema);
  const env = {
    DATABASE_URL: url.toString(),
    GATEHOUSE_ISSUER: "https://bench.local",
    GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
    GATEHOUSE_REVOCATION: "none",
    GATEHOUSE_LOG_LEVEL: "error",
    GATEHOUSE_LOG_PRETTY: "false",
  };
  const load = [loadavg()[0]!];
  const runs: Record<Runtime, Start[]> = { dist: [], tsx: [] };
  const helps: Record<Runtime, number[]> = { dist: [], tsx: [] };
  try {
    await startServe("dist", env); // creates the keys; not measured
    for (let i = 0; i < starts; i++) {
      for (const runtime of RUNTIMES) {
        runs[runtime].push(await startServe(runtime, env));
        helps[runtime].push(await helpMs(runtime));
      }
    }
  } finally {
    const c = new pg.Client({ connectionString: DATABASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
  load.push(loadavg()[0]!);
  const dist = median(runs.dist, (s) => s.readyMs);
  const tsx = median(runs.tsx, (s) => s.readyMs);
  const help = (r: Runtime) => median(helps[r], (ms) => ms);
  report(
    "startup",
    [
      row("ready_ms_dist", dist.readyMs, "ms", 1000),
      row("ready_ms_dist_vs_tsx", dist.readyMs, "ms", tsx.readyMs),
      row("cpu_to_ready_ms_dist_vs_tsx", dist.cpuMs, "ms", tsx.cpuMs),
      row("rss_idle_mb_dist", dist.rssMb, "MB", 120),
      row("rss_idle_mb_dist_vs_tsx", dist.rssMb, "MB", tsx.rssMb),
      row("serve_help_ms_dist_vs_tsx", help("dist"), "ms", help("tsx")),
    ],
    {
      how: "node bin/gatehouse.mjs serve (GATEHOUSE_RUNTIME=dist, then tsx, alternating) on a migrated schema with its keys made; ready = spawn to /readyz 200; CPU = utime+stime at ready; RSS = VmRSS 2 s after ready; serve --help = spawn to exit; medians",
      limits:
        "targets (P8): ready <= 1 s, idle RSS <= 120 MB on the compiled runtime; tsx in the same run is the peer",
      build: `dist/cli ${build.cli}, dist/sidecar ${build.sidecar} before the run`,
      allocator: imageAllocator().description,
      starts: Object.fromEntries(
        RUNTIMES.map((r) => [
          r,
          runs[r].map((s) => ({
            readyMs: Math.round(s.readyMs),
            cpuMs: Math.round(s.cpuMs),
            rssMb: Math.round(s.rssMb),
          })),
        ]),
      ),
      serveHelpMs: Object.fromEntries(RUNTIMES.map((r) => [r, helps[r].map(Math.round)])),
      loadAverage1m: load.map((l) => Math.round(l * 100) / 100),
    },
  );
}

await main();
process.exit(0);
