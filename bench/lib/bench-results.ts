import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** One measured figure, with the limit or peer it is compared against (measured in the same run). */
export interface BenchRow {
  metric: string;
  value: number;
  unit: string;
  limit: number | null;
  /** value / limit when there is a limit. */
  ratio: number | null;
}

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "results");

export function row(metric: string, value: number, unit: string, limit: number | null = null): BenchRow {
  const round = (n: number) => (Math.abs(n) >= 100 ? Math.round(n) : Math.round(n * 100) / 100);
  return {
    metric,
    value: round(value),
    unit,
    limit: limit === null ? null : round(limit),
    ratio: limit === null || limit === 0 ? null : Math.round((value / limit) * 1000) / 1000,
  };
}

export function machine() {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** Prints the rows as a table and writes `bench/results/<name>.json`. */
export function report(name: string, rows: BenchRow[], notes: Record<string, unknown> = {}): void {
  const header = ["metric", "value", "unit", "limit", "ratio"];
  const cells = rows.map((r) => [
    r.metric,
    String(r.value),
    r.unit,
    r.limit === null ? "-" : String(r.limit),
    r.ratio === null ? "-" : r.ratio.toFixed(3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c.map((v, i) => (i === 0 || i === 2 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join("  ");
  console.log(`\n${name} (${machine().cores} cores, Node ${process.version})`);
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(line(c));
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(
    join(RESULTS_DIR, `${name}.json`),
    `${JSON.stringify({ name, machine: machine(), notes, rows }, null, 2)}\n`,
  );
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
