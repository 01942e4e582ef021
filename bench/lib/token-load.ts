/**
 * Load on the token service from separate driver processes (a grpc-js client in one process tops out
 * near 3k calls/s), all on loopback. Every driver prepares first (issuing the tokens it will refresh,
 * say) and only then do they all start together, so that `atStart` can snapshot CPU and table
 * statistics at the start of the measured window, with nothing of the preparation inside it.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { percentile } from "./bench-results.ts";

const DRIVER = fileURLToPath(new URL("./token-load-driver.ts", import.meta.url));

export interface DriverTask {
  mode: "issue" | "refresh" | "refresh-preloaded";
  port: number;
  clientId: string;
  secret: string;
  slots: number;
  durationMs: number;
  /** Stop after this many calls (of this driver), even before `durationMs`. */
  maxCalls?: number;
  /** "refresh-preloaded": this driver's share of the sessions written by soak-preload.ts. */
  preloaded?: { seed: string; first: number; count: number };
}

export interface DriverResult {
  calls: number;
  errors: Record<string, number>;
  latenciesMs: number[];
  elapsedMs: number;
}

export interface LoadResult {
  perSecond: number;
  p50: number;
  p99: number;
  calls: number;
  errors: Record<string, number>;
  elapsedMs: number;
}

export type LoadTask = Omit<DriverTask, "slots" | "maxCalls" | "preloaded"> & {
  maxCalls?: number;
  preloaded?: { seed: string; count: number };
};

/** Split `total` into `parts` near-equal integers. */
function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export async function driveLoad(
  task: LoadTask,
  concurrency: number,
  drivers: number,
  atStart: () => Promise<void> = async () => {},
): Promise<LoadResult> {
  const slots = shares(concurrency, drivers);
  const calls = task.maxCalls === undefined ? undefined : shares(task.maxCalls, drivers);
  const sessions = task.preloaded === undefined ? undefined : shares(task.preloaded.count, drivers);
  const children: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  const results: Promise<DriverResult>[] = [];
  for (let i = 0; i < drivers; i++) {
    const child = fork(DRIVER, [], { execArgv: ["--import", "tsx"], stdio: "inherit" });
    children.push(child);
    const exited = new Promise<never>((_, reject) =>
      child.once("exit", (code) => reject(new Error(`load driver exited ${code} before its result`))),
    );
    ready.push(
      Promise.race([new Promise<void>((resolve) => child.once("message", () => resolve())), exited]),
    );
    results.push(
      Promise.race([
        new Promise<DriverResult>((resolve) =>
          child.on("message", (m: { type: string; result?: DriverResult }) => {
            if (m.type === "result") resolve(m.result!);
          }),
        ),
        exited,
      ]),
    );
    const first = sessions?.slice(0, i).reduce((a, b) => a + b, 0) ?? 0;
    const { maxCalls: _, preloaded, ...common } = task;
    const driverTask: DriverTask = {
      ...common,
      slots: slots[i]!,
      ...(calls ? { maxCalls: calls[i]! } : {}),
      ...(preloaded ? { preloaded: { seed: preloaded.seed, first, count: sessions![i]! } } : {}),
    };
    child.send({ type: "task", task: driverTask });
  }
  try {
    await Promise.all(ready);
    await atStart();
    for (const c of children) c.send({ type: "go" });
    const done = await Promise.all(results);
    const latencies = done.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    const total = done.reduce((n, r) => n + r.calls, 0);
    const elapsedMs = Math.max(...done.map((r) => r.elapsedMs));
    const errors: Record<string, number> = {};
    for (const r of done) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    return {
      perSecond: total / (elapsedMs / 1000),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      calls: total,
      errors,
      elapsedMs,
    };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
}
