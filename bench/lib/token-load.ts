/**
 * Load on the token service from separate driver processes (token-load-driver.ts), all on loopback.
 * Every driver prepares first (issuing the tokens it will refresh, say) and only then do they all
 * start together, so that `atStart` can snapshot CPU and table statistics at the start of the
 * measured window, with nothing of the preparation inside it.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { percentile } from "./bench-results.ts";
import type { PreloadedTokens } from "./soak-preload.ts";

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
  preloaded?: { tokens: PreloadedTokens; first: number; count: number };
}

export interface DriverResult {
  calls: number;
  errors: Record<string, number>;
  latenciesMs: number[];
  elapsedMs: number;
  /** The driver process's own CPU (user + system) over its measured loop, µs. */
  cpuUs: number;
}

export interface LoadResult {
  perSecond: number;
  p50: number;
  p99: number;
  calls: number;
  errors: Record<string, number>;
  elapsedMs: number;
  /** CPU of all driver processes over their measured loops, µs. */
  driverCpuUs: number;
}

export type LoadTask = Omit<DriverTask, "slots" | "maxCalls" | "preloaded"> & {
  maxCalls?: number;
  preloaded?: { tokens: PreloadedTokens; count: number };
};

/** Split `total` into `parts` near-equal integers. */
function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

interface Driver {
  child: ChildProcess;
  /** The next message of type `type`; rejects if the process exits first. */
  next<T>(type: string): Promise<T>;
}

function forkDriver(): Driver {
  const child = fork(DRIVER, [], { execArgv: ["--import", "tsx"], stdio: "inherit" });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`load driver exited ${code}`))),
  );
  exited.catch(() => {}); // observed by whoever waits in next()
  return {
    child,
    next<T>(type: string) {
      return Promise.race([
        new Promise<T>((resolve) => {
          const on = (m: { type: string } & T) => {
            if (m.type !== type) return;
            child.off("message", on);
            resolve(m);
          };
          child.on("message", on);
        }),
        exited,
      ]);
    },
  };
}

/** Driver processes that stay up from one load to the next (and remember the tokens they hold). */
export interface LoadDrivers {
  /**
   * Runs one load: every driver prepares, then `atStart` runs (snapshot the start of the measured
   * window there), then all drivers start together; resolves when all have finished.
   */
  drive(task: LoadTask, concurrency: number, atStart?: () => Promise<void>): Promise<LoadResult>;
  close(): void;
}

export function startLoadDrivers(count: number): LoadDrivers {
  const drivers = Array.from({ length: count }, forkDriver);
  return {
    async drive(task, concurrency, atStart = async () => {}) {
      const slots = shares(concurrency, count);
      const calls = task.maxCalls === undefined ? undefined : shares(task.maxCalls, count);
      const sessions = task.preloaded === undefined ? undefined : shares(task.preloaded.count, count);
      const { maxCalls: _, preloaded, ...common } = task;
      const ready = drivers.map((d) => d.next("ready"));
      const results = drivers.map((d) => d.next<{ result: DriverResult }>("result"));
      for (const [i, d] of drivers.entries()) {
        const first = sessions?.slice(0, i).reduce((a, b) => a + b, 0) ?? 0;
        const driverTask: DriverTask = {
          ...common,
          slots: slots[i]!,
          ...(calls ? { maxCalls: calls[i]! } : {}),
          ...(preloaded ? { preloaded: { tokens: preloaded.tokens, first, count: sessions![i]! } } : {}),
        };
        d.child.send({ type: "task", task: driverTask });
      }
      await Promise.all(ready);
      await atStart();
      for (const d of drivers) d.child.send({ type: "go" });
      const done = (await Promise.all(results)).map((m) => m.result);
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
        driverCpuUs: done.reduce((n, r) => n + r.cpuUs, 0),
      };
    },
    close() {
      for (const d of drivers) {
        if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill("SIGKILL");
      }
    },
  };
}

/** One load on drivers of its own (see {@link LoadDrivers.drive}). */
export async function driveLoad(
  task: LoadTask,
  concurrency: number,
  drivers: number,
  atStart?: () => Promise<void>,
): Promise<LoadResult> {
  const set = startLoadDrivers(drivers);
  try {
    return await set.drive(task, concurrency, atStart);
  } finally {
    set.close();
  }
}
