import { fork } from "node:child_process";
import { percentile } from "./bench-results.ts";

/** What one driver process sends back when its time is up. */
export interface DriverResult {
  calls: number;
  errors: Record<string, number>;
  latenciesMs: number[];
}

/** The drivers' results together: rate over the window, latency percentiles, errors by kind. */
export interface DriversResult {
  perSecond: number;
  p50: number;
  p99: number;
  errors: Record<string, number>;
}

/**
 * Load from `drivers` child processes sharing `concurrency` slots: forks `file` with `role` (the
 * flag its module checks to run as a driver), sends each the task `taskFor(slots)` builds, and
 * merges the {@link DriverResult}s they send back.
 */
export async function runForkedDrivers<Task>(options: {
  file: string;
  role: string;
  drivers: number;
  concurrency: number;
  durationMs: number;
  taskFor: (slots: number) => Task;
}): Promise<DriversResult> {
  const { drivers, concurrency } = options;
  const results = await Promise.all(
    Array.from({ length: drivers }, (_, i) => {
      const child = fork(options.file, [options.role], { execArgv: ["--import", "tsx"], stdio: "inherit" });
      const slots = Math.floor(concurrency / drivers) + (i < concurrency % drivers ? 1 : 0);
      return new Promise<DriverResult>((resolve, reject) => {
        child.once("message", (m) => resolve(m as DriverResult));
        child.once("exit", (code) => code !== 0 && reject(new Error(`${options.role} exited ${code}`)));
        child.send(options.taskFor(slots) as object);
      });
    }),
  );
  const latencies = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const calls = results.reduce((n, r) => n + r.calls, 0);
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    perSecond: calls / (options.durationMs / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
  };
}
