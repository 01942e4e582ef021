/**
 * P6 on the sidecar as shipped: `node bin/gatehouse.mjs sidecar` (whatever the launcher resolves to)
 * against a running token service (`gatehouse serve`, JWKS from it) and a Redis revocation stream.
 *
 *   npx tsx bench/sidecar-footprint.ts [--starts 3] [--entries 1000000]
 *
 * - ready_ms: spawn to the first 200 from the control listener's /readyz (JWKS fetched, revocation
 *   stream bootstrapped), polled every 5 ms; median of `--starts` starts on an empty stream.
 * - rss_idle_mb: VmRSS (/proc/<pid>/status) one second after ready, on the empty stream; the median
 *   start's figure.
 * - ready_1m_ms / rss_1m_mb: the same with `--entries` live token_revoked events in the stream (so
 *   ready includes the bootstrap), RSS one second after ready. No GC is forced: this is what the
 *   kernel charges the process, not the heap's floor (bench/revocation.ts reports the state alone).
 *
 * Measures the shipped runtime: the bundle is rebuilt first if sources changed since install (in a
 * working tree the launcher would otherwise fall back to tsx), and GATEHOUSE_RUNTIME=bundle makes a
 * missing bundle fail the run instead of quietly measuring tsx.
 *
 * `--duration` and `--concurrency` are accepted and ignored (nothing here is timed load).
 * Writes bench/results/sidecar-footprint.json.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { Redis } from "ioredis";
import { buildSidecarBundle } from "../scripts/sidecar-bundle.mjs";
import { benchArgs } from "./lib/bench-args.ts";
import {
  freePort,
  REDIS_URL,
  ROOT,
  rssMb,
  startTokenService,
  stopProcess,
  waitForOk,
} from "./lib/bench-processes.ts";
import { report, row } from "./lib/bench-results.ts";
import { fillRevocationStream } from "./lib/revocation-fill.ts";

const args = benchArgs("npx tsx bench/sidecar-footprint.ts [flags]", {
  starts: 3,
  entries: 1_000_000,
  duration: 0,
  concurrency: 0,
});
const starts = Math.max(1, Math.floor(args.starts));
const entries = Math.floor(args.entries);
const label = entries >= 1e6 ? `${entries / 1e6}m` : `${Math.round(entries / 1000)}k`;

async function startSidecar(jwksBase: string, stream: string) {
  const [proxyPort, controlPort] = [await freePort(), await freePort()];
  const t0 = performance.now();
  const child = spawn(process.execPath, ["bin/gatehouse.mjs", "sidecar"], {
    cwd: ROOT,
    env: {
      ...process.env,
      GATEHOUSE_ISSUER: "https://bench.local",
      GATEHOUSE_AUDIENCES: "orders",
      GATEHOUSE_TOKEN_SERVICE_URL: jwksBase,
      GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
      GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
      GATEHOUSE_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
      REDIS_URL,
      GATEHOUSE_REVOCATION_STREAM: stream,
      GATEHOUSE_LOG_LEVEL: "warn",
      GATEHOUSE_LOG_PRETTY: "false",
      GATEHOUSE_RUNTIME: "bundle",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  try {
    await waitForOk(`http://127.0.0.1:${controlPort}/readyz`, child, 60_000);
  } catch (err) {
    await stopProcess(child);
    throw err;
  }
  const readyMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 1000));
  const mb = rssMb(child.pid!);
  await stopProcess(child);
  return { readyMs, rssMb: mb };
}

async function main(): Promise<void> {
  const bundle = await buildSidecarBundle();
  const redis = new Redis(REDIS_URL);
  const stream = `bench:footprint:${randomBytes(4).toString("hex")}`;
  const service = await startTokenService();
  try {
    const jwksBase = `http://127.0.0.1:${service.httpPort}`;
    const load = [loadavg()[0]];
    const empty = [];
    for (let i = 0; i < starts; i++) empty.push(await startSidecar(jwksBase, `${stream}:empty`));
    const byReady = [...empty].sort((a, b) => a.readyMs - b.readyMs);
    const median = byReady[Math.floor((byReady.length - 1) / 2)]!;
    const fillS = await fillRevocationStream(redis, stream, entries);
    load.push(loadavg()[0]);
    const full = await startSidecar(jwksBase, stream);
    load.push(loadavg()[0]);
    report(
      "sidecar-footprint",
      [
        row("ready_ms", median.readyMs, "ms", 1000),
        row("rss_idle_mb", median.rssMb, "MB", 80),
        // Targets are for 1M entries; smaller smoke runs get no limit (RSS does not scale to zero).
        row(`ready_${label}_ms`, full.readyMs, "ms", entries >= 1e6 ? 1000 + 5000 * (entries / 1e6) : null),
        row(`rss_${label}_mb`, full.rssMb, "MB", entries >= 1e6 ? 250 * (entries / 1e6) : null),
      ],
      {
        how: "node bin/gatehouse.mjs sidecar against gatehouse serve (JWKS) and Redis; ready = spawn to /readyz 200; RSS = VmRSS 1 s after ready, no forced GC",
        limits:
          "targets: ready <= 1 s, RSS <= 80 MB idle, <= 250 MB with 1M entries (bootstrap <= 5 s, so ready <= 1 s + 5 s)",
        starts: empty.map((s) => ({ readyMs: Math.round(s.readyMs), rssMb: Math.round(s.rssMb) })),
        runtime: `bundle (${bundle} before the run)`,
        entries,
        fillS: Math.round(fillS * 100) / 100,
        loadAverage1m: load.map((l) => Math.round(l! * 100) / 100),
      },
    );
  } finally {
    await redis.del(stream, `${stream}:empty`);
    redis.disconnect();
    await service.stop();
  }
}

await main();
process.exit(0);
