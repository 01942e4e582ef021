/**
 * `npm run bench`: runs every benchmark in bench/ one after another (never two at once: they share
 * two cores), prints one summary table and writes bench/results/summary.md from their JSON results.
 *
 *   npm run bench [-- --duration 10] [-- --concurrency 32]   flags are passed to every benchmark
 *   npm run bench:quick                                       smoke mode: a few seconds each, not figures
 *
 * Full runs are sequential. The quick mode runs two lanes at once (its figures mean nothing anyway)
 * to stay well under 90 s, and prints each benchmark's output when it ends.
 *
 * Exits 1 when any benchmark fails, runs over its time budget, or writes no result: CI runs the
 * quick mode to keep them all working.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { type BenchRow, machine, RESULTS_DIR } from "./lib/bench-results.ts";

const quick = process.argv.includes("--quick");
const passThrough = process.argv.slice(2).filter((a) => a !== "--quick");

interface Bench {
  name: string;
  file: string;
  /** Arguments in quick mode; a flag also given on the command line keeps the command line's value. */
  quickArgs: string[];
  /** Longest run allowed, seconds: full and quick. */
  budget: [number, number];
  /** Quick mode's lane (0 or 1): the lanes run side by side. */
  lane: number;
}

const BENCHES: Bench[] = [
  {
    name: "token-service",
    file: "bench/token-service.ts",
    // Quick: a short wait for Postgres' statistics, so rows written are rough (smoke, not figures).
    quickArgs: ["--duration", "1", "--concurrency", "8", "--stats-settle", "1", "--warmup", "0.5"],
    // Warm-ups: 10 s of Issue and of Refresh before each service's windows, 40 s in all (2 s quick).
    // The OAuth refresh run (own driver processes) adds ~4 s in quick mode, ~15 s in full; the waits
    // for Postgres' statistics around the Refresh window ~3 s in quick mode, ~25 s in full.
    // The assertion refresh run adds about as much as the OAuth one; the traced service (a second
    // start and two more windows) ~25 s in full, ~10 s in quick mode.
    budget: [340, 95],
    lane: 0,
  },
  {
    name: "serving-cost",
    file: "bench/serving-cost.ts",
    quickArgs: ["--duration", "1", "--warmup", "0.5", "--rounds", "1"],
    budget: [120, 40],
    lane: 1,
  },
  {
    name: "sidecar-verify",
    file: "bench/sidecar-verify.ts",
    quickArgs: ["--duration", "1"],
    budget: [60, 30],
    lane: 0,
  },
  {
    name: "sidecar",
    file: "bench/sidecar.ts",
    quickArgs: ["--duration", "1", "--connections", "16", "--tokens", "2000"],
    // The traced sidecar (a start and four alternating loads) adds ~8 s in quick mode.
    budget: [200, 70],
    lane: 1,
  },
  {
    name: "sidecar-footprint",
    file: "bench/sidecar-footprint.ts",
    quickArgs: ["--starts", "1", "--entries", "10000"],
    budget: [180, 30],
    lane: 0,
  },
  {
    name: "soak",
    file: "bench/soak.ts",
    quickArgs: [
      "--sessions",
      "2000",
      "--empty-sessions",
      "200",
      "--duration",
      "1",
      "--warmup",
      "0.5",
      "--growth-refreshes",
      "300",
      "--group-sessions",
      "500",
      "--group-duration",
      "1",
      "--concurrency",
      "8",
    ],
    // Full: COPY of 5M sessions, 2 × 60 s of Refresh, 1M refreshes (at most 30 min), group commit.
    budget: [3000, 75],
    lane: 1,
  },
  {
    name: "startup",
    file: "bench/startup.ts",
    // Quick: one measured start per runtime (plus the unmeasured one that makes the keys).
    quickArgs: ["--starts", "1"],
    budget: [300, 60],
    lane: 1,
  },
  {
    name: "revocation",
    file: "bench/revocation.ts",
    quickArgs: ["--events", "60", "--subscribers", "8", "--procs", "2", "--small", "2000", "--big", "10000"],
    budget: [240, 40],
    lane: 0,
  },
];

function run(b: Bench): Promise<Outcome> {
  const quickArgs: string[] = [];
  for (let i = 0; quick && i < b.quickArgs.length; i += 2) {
    if (!passThrough.includes(b.quickArgs[i]!)) quickArgs.push(b.quickArgs[i]!, b.quickArgs[i + 1]!);
  }
  const args = ["--import", "tsx", b.file, ...quickArgs, ...passThrough];
  const started = performance.now();
  const budgetS = b.budget[quick ? 1 : 0];
  // A stale result from an earlier run must not pass for this one's.
  rmSync(join(RESULTS_DIR, `${b.name}.json`), { force: true });
  const header = `\n=== ${b.name} (load average ${loadavg()[0]!.toFixed(2)})`;
  if (!quick) console.log(header);
  return new Promise((resolve) => {
    // Its own process group, so a benchmark over budget is stopped with every process it started.
    const child = spawn(process.execPath, args, {
      stdio: quick ? ["ignore", "pipe", "pipe"] : "inherit",
      detached: true,
    });
    let output = "";
    child.stdout?.on("data", (d) => {
      output += d;
    });
    child.stderr?.on("data", (d) => {
      output += d;
    });
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), budgetS * 1000);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      let why: string | undefined;
      if (signal === "SIGKILL" && seconds >= budgetS) why = `over its ${budgetS} s budget`;
      else if (code !== 0) why = `exit ${code ?? signal}`;
      else if (!existsSync(join(RESULTS_DIR, `${b.name}.json`))) why = "wrote no result";
      if (quick) console.log(`${header}\n${output.trimEnd()}`);
      if (why) console.error(`${b.name} FAILED: ${why}`);
      load.push(loadavg()[0]!);
      resolve({ name: b.name, ok: why === undefined, seconds, ...(why ? { why } : {}) });
    });
  });
}

interface Outcome {
  name: string;
  ok: boolean;
  seconds: number;
  why?: string;
}

const load = [loadavg()[0]!];
const started = performance.now();
const outcomes: Outcome[] = [];
if (quick) {
  const lanes = [0, 1].map(async (lane) => {
    for (const b of BENCHES.filter((x) => x.lane === lane)) outcomes.push(await run(b));
  });
  await Promise.all(lanes);
} else {
  for (const b of BENCHES) outcomes.push(await run(b));
}
const totalS = (performance.now() - started) / 1000;

const m = machine();
const table: string[][] = [["benchmark", "metric", "value", "unit", "limit / peer", "ratio"]];
for (const b of BENCHES) {
  const file = join(RESULTS_DIR, `${b.name}.json`);
  if (!existsSync(file)) continue;
  const { rows } = JSON.parse(readFileSync(file, "utf8")) as { rows: BenchRow[] };
  for (const r of rows) {
    table.push([
      b.name,
      r.metric,
      String(r.value),
      r.unit,
      r.limit === null ? "-" : String(r.limit),
      r.ratio === null ? "-" : r.ratio.toFixed(3),
    ]);
  }
}
const right = new Set([2, 4, 5]);
const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
console.log(
  `\nSummary (${m.cores} cores, ${m.cpu}, Node ${m.node}, ${m.date})${quick ? ": QUICK SMOKE RUN, not figures" : ""}`,
);
for (const [i, r] of table.entries()) {
  console.log(r.map((c, j) => (right.has(j) ? c.padStart(widths[j]!) : c.padEnd(widths[j]!))).join("  "));
  if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
}
const timings = outcomes
  .map((o) => `${o.name} ${o.seconds.toFixed(0)} s${o.ok ? "" : ` (FAILED: ${o.why})`}`)
  .join(", ");
console.log(
  `\n${timings}; total ${totalS.toFixed(0)} s; load average (1 min) ${load.map((l) => l.toFixed(2)).join(" → ")}`,
);

const md = [
  "# Benchmark summary",
  "",
  `${m.date} · ${m.cores} cores (${m.cpu}) · Node ${m.node} · total ${totalS.toFixed(0)} s${quick ? " · QUICK SMOKE RUN, not figures" : ""}`,
  "",
  `Load average (1 min) at the start and as each benchmark ended: ${load.map((l) => l.toFixed(2)).join(" → ")}. ` +
    "Every limit or peer is measured in the same run as the figure it bounds; ratio = value / limit.",
  "",
  `| ${table[0]!.join(" | ")} |`,
  "| --- | --- | ---: | --- | ---: | ---: |",
  ...table.slice(1).map((r) => `| ${r.join(" | ")} |`),
  "",
  `Run times: ${timings}.`,
];
writeFileSync(join(RESULTS_DIR, "summary.md"), `${md.join("\n")}\n`);
console.log(`wrote ${join(RESULTS_DIR, "summary.md")}`);
const failed = outcomes.filter((o) => !o.ok);
if (failed.length > 0)
  console.error(`${failed.length} benchmark(s) failed: ${failed.map((f) => f.name).join(", ")}`);
process.exit(failed.length === 0 ? 0 : 1);
