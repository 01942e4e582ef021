/**
 * Child processes of bench/revocation.ts, kept apart from it so that they load only what a sidecar
 * loads (revocation state, stream follower, Redis bus): the bootstrap child's RSS is then the cost of
 * a process holding just the state, not of the benchmark's Postgres and Prisma modules.
 *
 *   --role subscribers --mode gatehouse|raw --key K --n N   follow K with N followers (or raw readers)
 *
 * A gatehouse subscriber process starts tracing as `gatehouse sidecar` does, before its followers:
 * the sidecar's tracing settings read from the environment, then `startTracing`. So tracing is on
 * exactly when the parent set `OTEL_EXPORTER_OTLP_ENDPOINT` for it, and off (no SDK loaded) otherwise.
 *   --role bootstrap --key K                                bootstrap one state from K, report, exit
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Redis } from "ioredis";
import { createRedisBus } from "../../services/shared/revocation/redis-bus.ts";
import type { RevocationBus } from "../../services/shared/revocation/revocation-bus.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import {
  createStreamFollower,
  DEFAULT_PAGE_SIZE,
  type StreamFollower,
} from "../../services/sidecar/revocation-stream/index.ts";
import { benchArgs } from "./bench-args.ts";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const clock = () => performance.timeOrigin + performance.now();
const quiet = { info() {}, warn() {} };

export type ToParent =
  | { ready: true; traced: boolean }
  | { id: string; at: number }
  | { cpuMs: number; loopDelay: LoopDelay }
  | { bootstrap: BootstrapResult };
/** Event-loop delay of a subscriber process while following (ms): how late it could notice a reply. */
export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}
export interface BootstrapResult {
  seconds: number;
  size: number;
  rssMb: number;
  rssBeforeMb: number;
  heapMb: number;
  /**
   * Floors, the same stream read again in the same process, nothing decoded or stored: through the
   * bus's range reader (what the bootstrap reads with), and through plain ioredis XRANGE.
   */
  rangeReadSeconds: number;
  ioredisReadSeconds: number;
}

/**
 * Reads the whole stream in the follower's pages, asking for the next page before looking at this
 * one (as the follower does), and throws the entries away.
 */
async function readWhole(range: (afterId: string) => Promise<{ id: string }[]>): Promise<number> {
  const t0 = performance.now();
  let next = range("0-0");
  for (;;) {
    const page = await next;
    if (page.length < DEFAULT_PAGE_SIZE) break;
    next = range(page.at(-1)!.id);
  }
  return (performance.now() - t0) / 1000;
}

async function readFloors(
  key: string,
): Promise<Pick<BootstrapResult, "rangeReadSeconds" | "ioredisReadSeconds">> {
  const bus = createRedisBus({ url: REDIS_URL, commandTimeoutMs: 30_000 });
  const rangeReadSeconds = await readWhole((after) => bus.range(key, after, DEFAULT_PAGE_SIZE));
  await bus.close();
  const redis = new Redis(REDIS_URL);
  const ioredisReadSeconds = await readWhole(async (after) => {
    const raw = (await redis.xrange(key, `(${after}`, "+", "COUNT", DEFAULT_PAGE_SIZE)) as [
      string,
      string[],
    ][];
    return raw.map(([id]) => ({ id }));
  });
  redis.disconnect();
  return { rangeReadSeconds, ioredisReadSeconds };
}

async function subscribers(mode: "gatehouse" | "raw", key: string, n: number): Promise<void> {
  const send = (m: ToParent) => process.send!(m);
  const seen = new Map<string, { count: number; at: number }>();
  const record = (id: string) => {
    const at = clock();
    const s = seen.get(id);
    if (!s) seen.set(id, { count: 1, at });
    else {
      s.count++;
      s.at = Math.max(s.at, at);
    }
    const now = seen.get(id)!;
    if (now.count === n) {
      seen.delete(id);
      send({ id, at: now.at });
    }
  };
  const stops: (() => Promise<void>)[] = [];
  // As in the sidecar: tracing starts before the followers and shuts down after them.
  const tracing = mode === "gatehouse" ? await startSidecarTracing() : undefined;
  if (mode === "gatehouse") {
    const buses: RevocationBus[] = [];
    const followers: StreamFollower[] = [];
    for (let i = 0; i < n; i++) {
      const bus = createRedisBus({ url: REDIS_URL, name: `bench-follower-${i}` });
      const follower = createStreamFollower({
        bus,
        stream: key,
        state: createMemoryRevocationState(),
        logger: quiet,
        onApplied: (event, live) => live && record(event.id),
      });
      buses.push(bus);
      followers.push(follower);
    }
    await Promise.all(followers.map((f) => f.start()));
    stops.push(async () => {
      await Promise.all(followers.map((f) => f.stop()));
      await Promise.all(buses.map((b) => b.close()));
    });
  } else {
    let stopped = false;
    const conns = Array.from({ length: n }, () => new Redis(REDIS_URL));
    await Promise.all(conns.map((c) => c.ping()));
    const loops = conns.map(async (c) => {
      let last = "0-0";
      while (!stopped) {
        const reply = (await c.xread("BLOCK", 5000, "STREAMS", key, last).catch(() => null)) as
          | [string, [string, string[]][]][]
          | null;
        for (const [id, fields] of reply?.[0]?.[1] ?? []) {
          last = id;
          record(fields[1]!);
        }
      }
    });
    stops.push(async () => {
      stopped = true;
      await Promise.all(loops);
      for (const c of conns) c.disconnect();
    });
  }
  const cpu0 = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  send({ ready: true, traced: tracing !== undefined });
  process.on("message", async (m) => {
    if (m === "stop") {
      loop.disable();
      const cpu = process.cpuUsage(cpu0);
      const ms = (ns: number) => Math.round(ns / 1e4) / 100;
      send({
        cpuMs: (cpu.user + cpu.system) / 1000,
        loopDelay: { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) },
      });
      for (const s of stops) await s();
      await tracing?.shutdown();
      process.exit(0);
    }
  });
}

/**
 * What `gatehouse sidecar` does for tracing (services/cli/sidecar-command.ts), nothing more: its
 * tracing settings from the environment, then `startTracing`. Imported on use, so the bootstrap
 * child's RSS stays that of a process holding just the state.
 */
async function startSidecarTracing() {
  const [{ loadSettings }, { tracingSettings }, { startTracing }, { createLogger }] = await Promise.all([
    import("../../services/shared/settings/index.ts"),
    import("../../services/shared/tracing/tracing-settings.ts"),
    import("../../services/shared/tracing/tracing.ts"),
    import("../../services/shared/logging/index.ts"),
  ]);
  const settings = loadSettings(tracingSettings("gatehouse-sidecar"));
  return startTracing(settings, createLogger({ level: "warn", component: "sidecar", pretty: false }));
}

async function bootstrapChild(key: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rssBefore = process.memoryUsage().rss;
  const state = createMemoryRevocationState();
  const bus = createRedisBus({ url: REDIS_URL, commandTimeoutMs: 30_000 });
  const follower = createStreamFollower({ bus, stream: key, state, logger: quiet, pruneIntervalMs: 0 });
  const t0 = performance.now();
  await follower.start();
  const seconds = (performance.now() - t0) / 1000;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  const mem = process.memoryUsage();
  const floors = await readFloors(key);
  process.send!({
    bootstrap: {
      seconds,
      size: state.size,
      rssMb: mem.rss / 2 ** 20,
      rssBeforeMb: rssBefore / 2 ** 20,
      heapMb: mem.heapUsed / 2 ** 20,
      ...floors,
    },
  } satisfies ToParent);
  await follower.stop();
  await bus.close();
  process.exit(0);
}

const args = benchArgs(
  "bench/lib/revocation-children.ts --role subscribers|bootstrap --key K [--mode M] [--n N]",
  {
    role: "",
    mode: "gatehouse",
    key: "",
    n: 0,
  },
);
if (args.role === "subscribers") {
  await subscribers(args.mode === "raw" ? "raw" : "gatehouse", args.key, Math.floor(args.n));
} else if (args.role === "bootstrap") {
  await bootstrapChild(args.key);
} else {
  process.stderr.write(`revocation-children: unknown --role "${args.role}"\n`);
  process.exit(2);
}
