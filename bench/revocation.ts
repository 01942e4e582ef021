/**
 * P5/P6: revocation propagation and the sidecar state's bootstrap cost, against limits measured in
 * the same run.
 *
 *   npx tsx bench/revocation.ts [--events 0] [--duration 20] [--rate 50] [--subscribers 100]
 *                               [--procs 2] [--warmup 1] [--small 100000] [--big 1000000]
 *
 * `--events 0` (the default) issues `--duration` seconds' worth at `--rate`; `--warmup` is seconds
 * at the rate too (0: none).
 *
 * `--concurrency` is accepted and ignored: load here is a steady rate, not closed-loop callers;
 * `--subscribers` is the knob for fan-out.
 *
 * Propagation: `--subscribers` stream followers (real `createStreamFollower` instances, each with its
 * own Redis connections and memory state) spread over `--procs` child processes. The main process
 * issues `--events` revocations at a steady `--rate`: each is the token service's one-statement
 * access-token revocation (outbox row, revoked jti, audit row) on real Postgres in a fresh schema,
 * then the relay's `publish` (what Revoke waits for). Measured per event: from `publish` returning to
 * the moment the last follower has applied the event (after which its state rejects the token).
 * Children report apply times over IPC on the shared clock `performance.timeOrigin + performance.now()`.
 * Limit: bare `XADD` → `XREAD` between the same number of raw ioredis readers in the same process
 * layout, from the XADD reply to the last reader's receipt. All subscriber sets run throughout and
 * one-second blocks rotate between limit, ours and ours traced (each drained before the next; each
 * round starts with the next set), so all see the same background load. Before the measured events,
 * one warm-up block of each set (`--warmup` seconds' worth, one by default) is run and left out; its
 * worst latency is reported as `warmupNotCounted`.
 *
 * What decides the tail here (traced with BENCH_REVOCATION_TRACE, subscriber event-loop delay and the
 * per-process arrival spread in the notes): (1) cold processes — in a cold run the slowest 1% of
 * events were all in each set's first block (JIT and lazy set-up in every subscriber at once), which
 * is why the warm-up is not counted; (2) CPU: an event costs the subscribers 6–11 ms of CPU in all
 * (each of the 100 reads its reply and writes its next XREAD: the write syscall alone is ~15% of a
 * subscriber's CPU), so on 2 cores the last process to be scheduled sets the tail. Two subscriber
 * processes (one per core) spread less than four (p99 ~8 ms against ~21 ms, same run conditions).
 *
 * Default rate 50/s: at 100 subscribers an event costs this 2-core VM about 4 ms
 * of CPU for the bare limit (mostly the 100 loopback XREAD writes) and about 10 ms for ours, so 200/s
 * saturates both and measures queueing rather than propagation (`--rate 200` shows it).
 *
 * Traced (`propagation_*_traced`): a third subscriber set whose processes start tracing as a sidecar
 * does (OTLP endpoint at a receiver in this process, every request sampled), fed by a publisher of
 * its own (its own schema, relay and stream), its blocks rotating with the other two; its limit is
 * the untraced figure of the same run. The publishing side has no tracing hooks, so it is not traced.
 *
 * BENCH_REVOCATION_TRACE=<file> writes every event's per-process arrival times (per set: limit,
 * ours, traced), to see where a tail comes from.
 *
 * Bootstrap: a stream of `--small` and `--big` token_revoked events (pipelined XADD under a bench-only
 * key, deleted afterwards); a fresh child process holding just a revocation state and one follower
 * bootstraps it; reported: time to ready, and RSS after a full GC. Writes bench/results/revocation.json.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import pg from "pg";
import { createDatabase, migrate } from "../services/shared/database/index.ts";
import { createLogger } from "../services/shared/logging/index.ts";
import { createRedisBus } from "../services/shared/revocation/redis-bus.ts";
import { createOutboxRelay, poolOutboxDb } from "../services/token/revocation/index.ts";
import { poolExecutor } from "../services/token/store/sql-executor.ts";
import { createSqlTokenStore } from "../services/token/store/sql-token-store.ts";
import { benchArgs } from "./lib/bench-args.ts";
import { percentile, report, row } from "./lib/bench-results.ts";
import { startOtlpReceiver } from "./lib/otlp-receiver.ts";
import type { BootstrapResult, LoopDelay, ToParent } from "./lib/revocation-children.ts";
import { fillRevocationStream } from "./lib/revocation-fill.ts";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const children = fileURLToPath(new URL("./lib/revocation-children.ts", import.meta.url));
const clock = () => performance.timeOrigin + performance.now();
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
const round = (n: number) => Math.round(n * 1000) / 1000;
const args = benchArgs("npx tsx bench/revocation.ts [flags]", {
  events: 0,
  duration: 20,
  rate: 50,
  subscribers: 100,
  procs: 2,
  warmup: 1,
  small: 100_000,
  big: 1_000_000,
  concurrency: 0,
});

/** This process's environment without the OpenTelemetry variables: children trace only when told. */
const untracedEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_")));

function spawnChild(args: string[], gc = false, env = untracedEnv): ChildProcess {
  return fork(children, args, {
    execArgv: ["--import", "tsx", ...(gc ? ["--expose-gc"] : [])],
    stdio: "inherit",
    env,
  });
}

/**
 * Starts the subscriber children and resolves once all are following. With `otlpEndpoint`, they
 * start with tracing on as a sidecar would be told to (its OTLP endpoint set, every request sampled).
 */
async function startSubscribers(
  mode: "gatehouse" | "raw",
  key: string,
  total: number,
  procs: number,
  otlpEndpoint?: string,
) {
  const env = otlpEndpoint
    ? {
        ...untracedEnv,
        OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
        OTEL_SERVICE_NAME: "gatehouse-sidecar-bench",
        OTEL_TRACES_SAMPLER: "always_on",
      }
    : untracedEnv;
  const reports = new Map<string, number[]>();
  /** Per event, which process reported it and when (for the tail analysis). */
  const arrivals = new Map<string, [number, number][]>();
  const loopDelays: LoopDelay[] = [];
  let childCpuMs = 0;
  const children: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  for (let p = 0; p < procs; p++) {
    const n = Math.floor(total / procs) + (p < total % procs ? 1 : 0);
    const child = spawnChild(
      ["--role", "subscribers", "--mode", mode, "--key", key, "--n", String(n)],
      false,
      env,
    );
    children.push(child);
    ready.push(
      new Promise((resolve, reject) => {
        child.once("exit", (code) => reject(new Error(`subscriber process exited (${code})`)));
        child.on("message", (m: ToParent) => {
          if ("ready" in m) {
            // A traced set that did not start tracing (or the reverse) would measure nothing new.
            if (m.traced === (mode === "gatehouse" && otlpEndpoint !== undefined)) resolve();
            else reject(new Error(`subscriber process started with tracing ${m.traced ? "on" : "off"}`));
          } else if ("cpuMs" in m) {
            childCpuMs += m.cpuMs;
            loopDelays.push(m.loopDelay);
          } else if ("id" in m) {
            const list = reports.get(m.id);
            if (list) list.push(m.at);
            else reports.set(m.id, [m.at]);
            const a = arrivals.get(m.id);
            if (a) a.push([p, m.at]);
            else arrivals.set(m.id, [[p, m.at]]);
          }
        });
      }),
    );
  }
  await Promise.all(ready);
  return {
    /** Per event: when the last subscriber of all processes had it, once every process reported. */
    lastApplied: (id: string) => {
      const list = reports.get(id);
      return list && list.length === procs ? Math.max(...list) : undefined;
    },
    arrivals: (id: string) => arrivals.get(id) ?? [],
    loopDelays,
    /** Stops the children; resolves with the CPU time they used while following (ms, all together). */
    async stop() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              c.removeAllListeners("exit");
              c.once("exit", () => resolve());
              c.send("stop");
              setTimeout(() => c.kill("SIGKILL"), 5000).unref();
            }),
        ),
      );
      return childCpuMs;
    },
  };
}

/** Issues `count` operations at `rate`/s; each returns the instant it counts from. */
async function steady(count: number, rate: number, op: (i: number) => Promise<number>): Promise<number[]> {
  const interval = 1000 / rate;
  const start = performance.now();
  const t0s: number[] = [];
  for (let i = 0; i < count; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    t0s.push(await op(i));
  }
  return t0s;
}

async function latencies(
  ids: string[],
  t0s: number[],
  lastApplied: (id: string) => number | undefined,
): Promise<{ sorted: number[]; missing: number }> {
  const deadline = Date.now() + 10_000;
  while (ids.some((id) => lastApplied(id) === undefined) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const values: number[] = [];
  let missing = 0;
  ids.forEach((id, i) => {
    const at = lastApplied(id);
    if (at === undefined) missing++;
    else values.push(at - t0s[i]!);
  });
  return { sorted: values.sort((a, b) => a - b), missing };
}

/**
 * Where the slowest 1 % of events lost their time: how late the first subscriber process had them
 * (Redis, the publisher, or every process at once) against the spread to the last one (one process
 * late: its event loop), and which process was last.
 */
function tail(
  ids: string[],
  t0s: number[],
  arrivals: (id: string) => [number, number][],
): { events: number; firstMs: number; spreadMs: number; lastProcess: Record<string, number> } {
  const rows = ids
    .map((id, i) => {
      const a = arrivals(id);
      if (a.length === 0) return undefined;
      const times = a.map(([, at]) => at);
      const last = a.reduce((x, y) => (y[1] > x[1] ? y : x));
      return { total: Math.max(...times) - t0s[i]!, first: Math.min(...times) - t0s[i]!, last: last[0] };
    })
    .filter((r) => r !== undefined)
    .sort((a, b) => b.total - a.total);
  const worst = rows.slice(0, Math.max(1, Math.ceil(rows.length / 100)));
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const lastProcess: Record<string, number> = {};
  for (const r of worst) lastProcess[r.last] = (lastProcess[r.last] ?? 0) + 1;
  return {
    events: worst.length,
    firstMs: round(median(worst.map((r) => r.first))),
    spreadMs: round(median(worst.map((r) => r.total - r.first))),
    lastProcess,
  };
}

/**
 * Revoke's path into one stream: the token service's revocation statement (outbox row, revoked jti,
 * audit row) on real Postgres in a schema of its own, then the relay's publish. The traced set gets
 * a publisher of its own because the relay puts every outbox row into its one stream.
 */
async function startPublisher(stream: string) {
  const schema = `bench_rv_${randomBytes(4).toString("hex")}`;
  await migrate({ kind: "postgres", url: DATABASE_URL, schema });
  const db = await createDatabase({ kind: "postgres", url: DATABASE_URL, schema }, { poolSize: 4 });
  const bus = createRedisBus({ url: REDIS_URL, name: "bench-relay" });
  const relay = createOutboxRelay({
    db: poolOutboxDb(db.pool!),
    bus,
    stream,
    maxAccessTokenTtlMs: 3_600_000,
    logger: createLogger({ level: "warn", component: "bench", pretty: false }),
    pruneIntervalMs: 0,
  });
  const store = createSqlTokenStore(poolExecutor(db.pool!));
  relay.start();
  let notPropagated = 0;
  return {
    get notPropagated() {
      return notPropagated;
    },
    /** Revokes one token and publishes it; resolves with the event id and when publish returned. */
    async revoke(): Promise<{ id: string; at: number }> {
      const revoked = await store.revokeAccessToken({
        jti: randomUUID(),
        sessionId: null,
        subject: "bench-user",
        clientId: "bench",
        expiresAt: new Date(Date.now() + 600_000),
        reason: "bench",
        now: new Date(),
        actor: "client:bench",
        requestId: "bench",
      });
      const ok = await relay.publish([revoked!.eventId]);
      const at = clock();
      if (!ok) notPropagated++;
      return { id: revoked!.eventId, at };
    },
    async close() {
      await relay.stop();
      await bus.close();
      await db.close();
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    },
  };
}

type Subscribers = Awaited<ReturnType<typeof startSubscribers>>;
type Publisher = Awaited<ReturnType<typeof startPublisher>>;
interface Run {
  ids: string[];
  t0s: number[];
  cpuMs: number;
}

async function propagation(
  events: number,
  warmup: number,
  rate: number,
  subs: number,
  procs: number,
  redis: Redis,
) {
  const key = `bench:revocation:${randomBytes(4).toString("hex")}`;
  const receiver = await startOtlpReceiver({ keep: false });
  const publishers: Publisher[] = [];
  const sets: Subscribers[] = [];
  try {
    // All three subscriber sets follow at once; blocks of one second rotate between them, so the
    // limit, ours and ours traced see the same background load on this shared machine. A set
    // waiting in XREAD costs nothing.
    const raw = await startSubscribers("raw", `${key}:raw`, subs, procs);
    sets.push(raw);
    const ours = await startSubscribers("gatehouse", `${key}:relay`, subs, procs);
    sets.push(ours);
    const traced = await startSubscribers("gatehouse", `${key}:traced`, subs, procs, receiver.endpoint);
    sets.push(traced);
    const oursPublisher = await startPublisher(`${key}:relay`);
    publishers.push(oursPublisher);
    const tracedPublisher = await startPublisher(`${key}:traced`);
    publishers.push(tracedPublisher);
    const newRun = (): Run => ({ ids: [], t0s: [], cpuMs: 0 });
    const runs = { limit: newRun(), ours: newRun(), traced: newRun() };
    // The limit: bare XADD, timed from its reply.
    const bare = async () => {
      const id = randomUUID();
      await redis.xadd(`${key}:raw`, "*", "e", id);
      runs.limit.ids.push(id);
      return clock();
    };
    // Ours: Revoke's statement (outbox row, revoked jti, audit row), then the relay's publish.
    const revokeInto = (publisher: Publisher, run: Run) => async () => {
      const { id, at } = await publisher.revoke();
      run.ids.push(id);
      return at;
    };
    const blocks = [
      [runs.limit, bare, raw],
      [runs.ours, revokeInto(oursPublisher, runs.ours), ours],
      [runs.traced, revokeInto(tracedPublisher, runs.traced), traced],
    ] as const;
    const block = Math.max(1, Math.round(rate));
    let rotation = 0;
    const runBlocks = async (count: number) => {
      for (let done = 0; done < count; done += block) {
        const n = Math.min(block, count - done);
        // Each round starts with the next set, so none always follows the same one.
        const first = rotation++ % blocks.length;
        for (const [run, op, set] of [...blocks.slice(first), ...blocks.slice(0, first)]) {
          const cpu = process.cpuUsage();
          run.t0s.push(...(await steady(n, rate, op)));
          run.cpuMs += cpuMs(process.cpuUsage(cpu));
          // Let the block drain before the next set's block starts, so none inherits a backlog.
          const settleBy = Date.now() + 2000;
          while (run.ids.slice(-n).some((id) => set.lastApplied(id) === undefined) && Date.now() < settleBy) {
            await new Promise((r) => setTimeout(r, 10));
          }
        }
      }
    };
    const worst = async (run: Run, set: Subscribers) =>
      round((await latencies(run.ids, run.t0s, set.lastApplied)).sorted.at(-1) ?? 0);
    // Warm-up, not counted: the first events through freshly started processes pay for JIT
    // compilation and lazy set-up in every subscriber at once (tens of ms: in a trace, the slowest
    // 1% of a cold run were all in each set's first block). Their worst case is reported apart.
    await runBlocks(warmup);
    const cold = {
      limitMaxMs: await worst(runs.limit, raw),
      oursMaxMs: await worst(runs.ours, ours),
      tracedMaxMs: await worst(runs.traced, traced),
      events: warmup,
    };
    for (const run of Object.values(runs)) {
      run.ids.length = 0;
      run.t0s.length = 0;
      run.cpuMs = 0;
    }
    await runBlocks(events);
    const limit = await latencies(runs.limit.ids, runs.limit.t0s, raw.lastApplied);
    const result = await latencies(runs.ours.ids, runs.ours.t0s, ours.lastApplied);
    const tracedResult = await latencies(runs.traced.ids, runs.traced.t0s, traced.lastApplied);
    const named = [
      ["limit", runs.limit, raw],
      ["ours", runs.ours, ours],
      ["traced", runs.traced, traced],
    ] as const;
    const tracePath = process.env.BENCH_REVOCATION_TRACE;
    if (tracePath) {
      // One line per event: set, publish time (ms since the first), per-process arrival after publish.
      const first = Math.min(...Object.values(runs).map((r) => r.t0s[0] ?? Infinity));
      const lines: string[] = [];
      for (const [name, run, set] of named) {
        run.ids.forEach((id, i) => {
          const t0 = run.t0s[i]!;
          const per = set.arrivals(id).map(([p, at]) => `${p}:${(at - t0).toFixed(2)}`);
          lines.push(`${name} ${(t0 - first).toFixed(1)} ${per.join(" ")}`);
        });
      }
      writeFileSync(tracePath, `${lines.join("\n")}\n`);
    }
    const tails = Object.fromEntries(
      named.map(([name, run, set]) => [name, tail(run.ids, run.t0s, set.arrivals)]),
    );
    // The children ran through the warm-up too: their CPU is spread over every event they saw.
    const perEvent = (publisherMs: number, subscribersMs: number) => ({
      publisherMs: round(publisherMs / events),
      subscribersMs: round(subscribersMs / (events + warmup)),
    });
    sets.length = 0;
    const cpuPerEvent = {
      ours: perEvent(runs.ours.cpuMs, await ours.stop()),
      traced: perEvent(runs.traced.cpuMs, await traced.stop()),
      limit: perEvent(runs.limit.cpuMs, await raw.stop()),
    };
    return {
      limit,
      ours: result,
      traced: tracedResult,
      notPropagated: { ours: oursPublisher.notPropagated, traced: tracedPublisher.notPropagated },
      cpuPerEvent,
      tails,
      cold,
      loopDelayMs: { ours: ours.loopDelays, traced: traced.loopDelays, limit: raw.loopDelays },
      otlpExports: receiver.received(),
    };
  } finally {
    // Only on failure are sets still running here (a normal run stopped them for their CPU figures).
    await Promise.all(sets.map((s) => s.stop()));
    for (const p of publishers) await p.close();
    await receiver.close();
    await redis.del(`${key}:raw`, `${key}:relay`, `${key}:traced`);
  }
}

async function bootstrap(size: number, redis: Redis): Promise<BootstrapResult & { buildS: number }> {
  const key = `bench:revocation:boot:${randomBytes(4).toString("hex")}`;
  try {
    const buildS = await fillRevocationStream(redis, key, size);
    const child = spawnChild(["--role", "bootstrap", "--key", key], true);
    const result = await new Promise<BootstrapResult>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`bootstrap process exited (${code})`)));
      child.on("message", (m: ToParent) => {
        if ("bootstrap" in m) resolve(m.bootstrap);
      });
    });
    child.removeAllListeners("exit");
    if (result.size !== size) throw new Error(`bootstrapped ${result.size} entries, expected ${size}`);
    return { ...result, buildS };
  } finally {
    await redis.del(key);
  }
}

async function main() {
  const rate = Math.max(1, args.rate);
  const events = Math.round(args.events > 0 ? args.events : args.duration * rate);
  const subs = Math.max(1, Math.floor(args.subscribers));
  // Seconds at the rate, so one block of each set by default (see runBlocks).
  const warmup = Math.round(args.warmup * rate);
  const procs = Math.max(1, Math.min(Math.floor(args.procs), subs));
  const small = Math.floor(args.small);
  const big = Math.floor(args.big);
  const redis = new Redis(REDIS_URL);
  try {
    const p = await propagation(events, warmup, rate, subs, procs, redis);
    const s = await bootstrap(small, redis);
    const b = await bootstrap(big, redis);
    const o = p.ours.sorted;
    const l = p.limit.sorted;
    const t = p.traced.sorted;
    const label = (n: number) => (n >= 1e6 ? `${n / 1e6}m` : `${Math.round(n / 1000)}k`);
    report(
      "revocation",
      [
        row("propagation_p50_ms", percentile(o, 50), "ms", percentile(l, 50)),
        row("propagation_p99_ms", percentile(o, 99), "ms", percentile(l, 99)),
        row("propagation_max_ms", o.at(-1) ?? 0, "ms", l.at(-1) ?? 0),
        // The limit of a traced figure is the untraced one of the same run: what tracing costs.
        row("propagation_p50_ms_traced", percentile(t, 50), "ms", percentile(o, 50)),
        row("propagation_p99_ms_traced", percentile(t, 99), "ms", percentile(o, 99)),
        row("xadd_xread_p50_ms", percentile(l, 50), "ms"),
        row("xadd_xread_p99_ms", percentile(l, 99), "ms"),
        row("propagation_p50_target_ratio", percentile(o, 50) / 5, "of 5 ms target"),
        row("propagation_p99_target_ratio", percentile(o, 99) / 25, "of 25 ms target"),
        // Targets are for 1M entries (5 s, 250 MB): bootstrap time scaled down to 100k, RSS not at all
        // (a process's base RSS does not shrink with the state).
        row(`bootstrap_${label(small)}_s`, s.seconds, "s", small >= 1e5 ? 5 * (small / 1e6) : null),
        row(`bootstrap_${label(big)}_s`, b.seconds, "s", big >= 1e5 ? 5 * (big / 1e6) : null),
        row(`range_read_${label(big)}_s`, b.rangeReadSeconds, "s"),
        row(`ioredis_xrange_${label(big)}_s`, b.ioredisReadSeconds, "s"),
        row(`bootstrap_${label(big)}_vs_range_read`, b.seconds, "s", b.rangeReadSeconds),
        row(`rss_${label(small)}_mb`, s.rssMb, "MB", small >= 1e6 ? 250 * (small / 1e6) : null),
        row(`rss_${label(big)}_mb`, b.rssMb, "MB", big >= 1e6 ? 250 * (big / 1e6) : null),
      ],
      {
        events,
        ratePerS: rate,
        subscribers: subs,
        processes: procs,
        layout: `${procs} child processes x ~${Math.round(subs / procs)} followers; each follower its own Redis connections and memory state`,
        limit:
          "bare XADD -> XREAD to the same number of raw ioredis readers, same process layout, same rate; one-second blocks alternate between limit and ours",
        measured: "publish() returning (Revoke's wait) -> last of the subscribers has applied the event",
        traced:
          "a third subscriber set, its processes started as a sidecar with OTEL_EXPORTER_OTLP_ENDPOINT set (a receiver in this process that counts) and OTEL_TRACES_SAMPLER=always_on: the sidecar's tracing settings, then startTracing, before the followers; fed by a publisher of its own (own schema, relay and stream), its one-second blocks rotating with limit and ours. The follower and the relay make no spans, so tracing costs here only what the loaded SDK does in the background (otlpExports counts what reached the receiver)",
        otlpExports: p.otlpExports,
        missing: { ours: p.ours.missing, traced: p.traced.missing, limit: p.limit.missing },
        notPropagated: p.notPropagated,
        cpuPerEvent: p.cpuPerEvent,
        warmupNotCounted: p.cold,
        tailOfSlowest1Percent: p.tails,
        tailNote:
          "median over the slowest 1% of events: firstMs = publish -> first subscriber process had it; spreadMs = first -> last process; lastProcess = which child was last",
        subscriberEventLoopDelayMs: p.loopDelayMs,
        cpuNote:
          "CPU ms per event: the publishing process (ours: Revoke's SQL + relay pass; Postgres not counted) and all subscriber processes together",
        bootstrap: {
          [label(small)]: { ...s, buildS: Math.round(s.buildS * 100) / 100 },
          [label(big)]: { ...b, buildS: Math.round(b.buildS * 100) / 100 },
        },
        bootstrapLimits:
          "targets are for 1M entries: 5 s and 250 MB; bootstrap time is scaled linearly down to 100k. range_read = the same stream read again in the same process through the bus's range reader, in the follower's pages, nothing decoded or stored (bootstrap minus range_read = decoding and storing); ioredis_xrange = the same pages through plain ioredis XRANGE, what the bootstrap cost before it had a reader of its own",
      },
    );
  } finally {
    redis.disconnect();
  }
}

await main();
process.exit(0);
