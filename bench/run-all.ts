/**
 * `npm run bench`: runs every benchmark in bench/ one after another (never two at once: they share
 * two cores), then writes bench/results/summary.md from their JSON results.
 *
 *   npm run bench [-- --duration 10] [-- --quick]
 *
 * `--quick` runs each for a second or two: a smoke test that the benchmarks still work, not figures.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type BenchRow, machine, RESULTS_DIR } from "./lib/bench-results.ts";

const quick = process.argv.includes("--quick");
const passThrough = process.argv.slice(2).filter((a) => a !== "--quick");
const BENCHES: { name: string; file: string; quickArgs: string[] }[] = [
  {
    name: "token-service",
    file: "bench/token-service.ts",
    quickArgs: ["--duration", "1", "--concurrency", "8"],
  },
  { name: "serving-cost", file: "bench/serving-cost.ts", quickArgs: ["--duration", "1"] },
  { name: "sidecar-verify", file: "bench/sidecar-verify.ts", quickArgs: ["--duration", "1"] },
  {
    name: "revocation",
    file: "bench/revocation.ts",
    quickArgs: ["--events", "100", "--subscribers", "8", "--procs", "2", "--small", "2000", "--big", "10000"],
  },
  {
    name: "sidecar",
    file: "bench/sidecar.ts",
    quickArgs: ["--duration", "1", "--connections", "16", "--tokens", "2000"],
  },
];

let failed = 0;
for (const b of BENCHES) {
  if (!existsSync(b.file)) continue;
  console.log(`\n=== ${b.name}`);
  const r = spawnSync(process.execPath, ["--import", "tsx", b.file, ...(quick ? b.quickArgs : passThrough)], {
    stdio: "inherit",
  });
  if (r.status !== 0) {
    console.error(`${b.name} failed (exit ${r.status ?? r.signal})`);
    failed++;
  }
}

const lines = [
  "# Benchmark summary",
  "",
  `${machine().date} · ${machine().cores} cores (${machine().cpu}) · Node ${machine().node}${quick ? " · QUICK SMOKE RUN, not figures" : ""}`,
  "",
  "| benchmark | metric | value | unit | limit / peer | ratio |",
  "| --- | --- | ---: | --- | ---: | ---: |",
];
for (const b of BENCHES) {
  const file = join(RESULTS_DIR, `${b.name}.json`);
  if (!existsSync(file)) continue;
  const { rows } = JSON.parse(readFileSync(file, "utf8")) as { rows: BenchRow[] };
  for (const r of rows) {
    lines.push(
      `| ${b.name} | ${r.metric} | ${r.value} | ${r.unit} | ${r.limit ?? "-"} | ${r.ratio ?? "-"} |`,
    );
  }
}
writeFileSync(join(RESULTS_DIR, "summary.md"), `${lines.join("\n")}\n`);
console.log(`\nwrote ${join(RESULTS_DIR, "summary.md")}`);
process.exit(failed === 0 ? 0 : 1);
