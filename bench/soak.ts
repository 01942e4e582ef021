/**
 * Soak: does Refresh stay as fast, and storage stay bounded, with millions of live sessions?
 *
 *   npx tsx bench/soak.ts [--sessions 5000000] [--duration 60] [--growth-refreshes 1000000]
 *                         [--empty-sessions 1000] [--warmup 3] [--concurrency 32] [--drivers 1]
 *                         [--group-sessions 20000] [--group-duration 10] [--growth-max-duration 1800]
 *                         [--stats-settle 11]
 *
 * 1. The empty database: a fresh schema holding only `--empty-sessions` live sessions; Refresh of
 *    random ones among them for `--duration` s through `gatehouse serve`, as below.
 * 2. The soak: a fresh schema preloaded with `--sessions` live sessions by COPY
 *    (bench/lib/soak-preload.ts), Refresh of random ones for `--duration` s: `soak_refresh_per_s`
 *    and its p99, the empty database's window as the limit.
 * 3. Both at once (`soak_paired_*`) for `--duration` s, each service with its own `--concurrency`
 *    callers: `soak_refresh_ratio` = soak / empty from this window, where both see the same machine
 *    (measurePaired says why). Then `--growth-refreshes` more refreshes of the soak's sessions
 *    (stopping at `--growth-max-duration` s whatever the count) and `soak_table_growth_ratio`: table +
 *    index + TOAST bytes of the schema's tables after / before them.
 * 4. Group commit for rotations, at the SQL level (bench/lib/rotation-group-commit.ts): one UPDATE per
 *    rotation against one UPDATE per group, on `--group-sessions` sessions for `--group-duration` s each.
 *    The service itself groups its fast-path rotations (services/token/store/rotation-batcher.ts), so
 *    steps 1 to 3 measure it with group commit; bench/token-service.ts gives the service-level gain.
 *
 * Beside the rate and CPU of each window measured alone: what it cost Postgres in pages
 * (bench/lib/pg-io-stats.ts), WAL bytes, full-page images and blocks read from outside
 * shared_buffers per refresh, read once the statistics have settled (`--stats-settle` s at each end
 * of a window), and the server settings that decide them (`notes.postgres`). The SQL per refresh is
 * the same in both windows, so these are what separates them. TEST_DATABASE_URL points the whole run
 * at another server, e.g. one sized for the table (docs/operations.md).
 *
 * Load comes from separate driver processes (bench/lib/token-load.ts); each driver slot refreshes
 * sessions of its own share only, so no two calls race on one session. Every schema is dropped at the
 * end. Targets: `soak_refresh_ratio` ≥ 0.9, `soak_table_growth_ratio` ≤ 1.05.
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import pg from "pg";
import { benchArgs } from "./lib/bench-args.ts";
import { createBenchSchema } from "./lib/bench-client.ts";
import {
  capacitySettings,
  DATABASE_URL,
  startTokenService,
  type TokenServiceProcess,
} from "./lib/bench-processes.ts";
import { report, row } from "./lib/bench-results.ts";
import { imageAllocator } from "./lib/image-allocator.ts";
import { measureWindow, type WindowCost } from "./lib/measured-window.ts";
import { type PgIo, pgCacheSettings } from "./lib/pg-io-stats.ts";
import { schemaBytes } from "./lib/pg-table-stats.ts";
import { compareGroupCommit, type RotationRun } from "./lib/rotation-group-commit.ts";
import { preloadedTokens, preloadLiveSessions, serviceKeys } from "./lib/soak-preload.ts";
import { type LoadDrivers, type LoadResult, type LoadTask, startLoadDrivers } from "./lib/token-load.ts";

const args = benchArgs("npx tsx bench/soak.ts [flags]", {
  sessions: 5_000_000,
  "empty-sessions": 1000,
  duration: 60,
  warmup: 3,
  "growth-refreshes": 1_000_000,
  "growth-max-duration": 1800,
  concurrency: 32,
  drivers: 1,
  "group-sessions": 20_000,
  "group-duration": 10,
  // Seconds to let Postgres flush its statistics at each end of a window (pg-table-stats.ts).
  "stats-settle": 11,
});
const sessions = Math.floor(args.sessions);
const emptySessions = Math.floor(args["empty-sessions"]);
const durationMs = args.duration * 1000;
const warmupMs = args.warmup * 1000;
const growthRefreshes = Math.floor(args["growth-refreshes"]);
const growthMaxMs = args["growth-max-duration"] * 1000;
const concurrency = Math.max(1, Math.floor(args.concurrency));
const drivers = Math.max(1, Math.floor(args.drivers));
const groupSessions = Math.floor(args["group-sessions"]);
const groupDurationMs = args["group-duration"] * 1000;

const schemas: string[] = [];
const newSchema = (kind: string) => {
  const name = `bench_soak_${kind}_${randomBytes(4).toString("hex")}`;
  schemas.push(name);
  return name;
};

/** One schema preloaded with sessions, its `gatehouse serve`, and drivers that know its tokens. */
interface Side {
  kind: string;
  schema: string;
  preloadS: number;
  server: TokenServiceProcess;
  /** The same drivers throughout: each remembers the current token of every session it refreshed. */
  load: LoadDrivers;
  task: Omit<LoadTask, "durationMs">;
}

/** A schema preloaded with `count` live sessions and `gatehouse serve` on it, warmed up. */
async function openSide(count: number, kind: string): Promise<Side> {
  const schema = newSchema(kind);
  const { clientId, secret } = await createBenchSchema(DATABASE_URL, schema);
  // The service gets this master key, so it loads the MAC key the preloaded tokens carry and signs
  // with the key the preloaded rows name.
  const masterKey = randomBytes(32);
  const { macKey, signingKid } = await serviceKeys(DATABASE_URL, schema, masterKey);
  const tokens = preloadedTokens(randomBytes(16).toString("hex"), macKey);
  const t0 = performance.now();
  await preloadLiveSessions({ url: DATABASE_URL, schema, clientId, signingKid, count, tokens });
  const preloadS = (performance.now() - t0) / 1000;
  console.log(`${kind}: ${count} live sessions preloaded in ${preloadS.toFixed(1)} s`);
  const server = await startTokenService(
    { ...capacitySettings(Math.min(concurrency, 32)), GATEHOUSE_MASTER_KEY: masterKey.toString("base64") },
    { schema },
  );
  const side: Side = {
    kind,
    schema,
    preloadS,
    server,
    load: startLoadDrivers(drivers),
    task: {
      port: server.grpcPort,
      clientId,
      secret,
      mode: "refresh-preloaded",
      preloaded: { tokens, count },
    },
  };
  try {
    await side.load.drive({ ...side.task, durationMs: warmupMs }, concurrency);
  } catch (err) {
    await closeSide(side);
    throw err;
  }
  return side;
}

async function closeSide(side: Side): Promise<void> {
  side.load.close();
  await side.server.stop();
}

/** Refresh on one side alone for the duration: rate, CPU and Postgres' I/O per call. */
async function measureAlone(side: Side): Promise<{ cost: WindowCost; loadAverage: [number, number] }> {
  const target = {
    databaseUrl: DATABASE_URL,
    schema: side.schema,
    servicePid: side.server.child.pid!,
    statsSettleMs: args["stats-settle"] * 1000,
  };
  let loadAtStart = 0;
  const cost = await measureWindow(target, (atStart) =>
    side.load.drive({ ...side.task, durationMs }, concurrency, async () => {
      await atStart();
      loadAtStart = loadavg()[0]!;
    }),
  );
  const { perSecond, p99 } = cost.load;
  console.log(`${side.kind}: ${perSecond.toFixed(0)} refreshes/s, p99 ${p99.toFixed(1)} ms`);
  return { cost, loadAverage: [loadAtStart, loadavg()[0]!] };
}

/**
 * Refresh on both sides at once, each with its own `--concurrency` callers, started together once
 * both sets of drivers are prepared. Windows taken one after another saw this shared VM at different
 * speeds: the same code gave empty-database windows of 2,490-3,948 refreshes/s in one afternoon, and
 * ratios of 0.77-1.14. Two services loaded together see the same machine (compare-revisions.ts: an
 * A/A run agrees to 1-2 %), so the ratio comes from here. Rates only: Postgres' CPU and WAL are
 * shared and cannot be split between the two.
 */
async function measurePaired(a: Side, b: Side): Promise<[LoadResult, LoadResult]> {
  let arrived = 0;
  let release = () => {};
  const bothReady = new Promise<void>((resolve) => {
    release = resolve;
  });
  const start = async () => {
    if (++arrived === 2) release();
    await bothReady;
  };
  const [ra, rb] = await Promise.all(
    [a, b].map((side) => side.load.drive({ ...side.task, durationMs }, concurrency, start)),
  );
  console.log(`paired: ${a.kind} ${ra!.perSecond.toFixed(0)}/s, ${b.kind} ${rb!.perSecond.toFixed(0)}/s`);
  return [ra!, rb!];
}

/** `--growth-refreshes` more refreshes; the schema's bytes before and after. */
async function grow(side: Side) {
  const db = new pg.Client({ connectionString: DATABASE_URL });
  await db.connect();
  try {
    const bytesBefore = await schemaBytes(db, side.schema);
    const load = await side.load.drive(
      { ...side.task, durationMs: growthMaxMs, maxCalls: growthRefreshes },
      concurrency,
    );
    return { load, bytesBefore, bytesAfter: await schemaBytes(db, side.schema) };
  } finally {
    await db.end();
  }
}

const sum = (bytes: Record<string, number>) => Object.values(bytes).reduce((a, b) => a + b, 0);
const mb = (bytes: Record<string, number>) =>
  Object.fromEntries(Object.entries(bytes).map(([t, b]) => [t, Math.round(b / 10_485.76) / 100]));
const round = (n: number) => Math.round(n * 1000) / 1000;
const perCall = (w: WindowCost, counter: keyof PgIo) => (w.io?.[counter] ?? 0) / Math.max(1, w.load.calls);

/** Group commit pays if it buys a tenth more throughput or a tenth less Postgres CPU, p99 at most doubled. */
function groupCommitVerdict(single: RotationRun, batched: RotationRun) {
  const throughput = batched.perSecond / single.perSecond;
  const dbCpu = batched.dbCpuUs / single.dbCpuUs;
  const p99 = batched.p99 / single.p99;
  return { pays: (throughput >= 1.1 || dbCpu <= 0.9) && p99 <= 2, throughput, dbCpu, p99 };
}

async function main(): Promise<void> {
  const sides: Side[] = [];
  try {
    const emptySide = await openSide(emptySessions, "empty");
    sides.push(emptySide);
    const empty = await measureAlone(emptySide);
    const fullSide = await openSide(sessions, "full");
    sides.push(fullSide);
    const soak = await measureAlone(fullSide);
    const [pairedFull, pairedEmpty] = await measurePaired(fullSide, emptySide);
    // The growth phase measures the full side's bytes; the empty side has nothing more to do.
    sides.splice(sides.indexOf(emptySide), 1);
    await closeSide(emptySide);
    const growth = await grow(fullSide);
    const groupSchema = newSchema("gc");
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${groupSchema}"`);
    const postgres = await pgCacheSettings(admin);
    await admin.end();
    const group = await compareGroupCommit({
      url: DATABASE_URL,
      schema: groupSchema,
      sessions: groupSessions,
      concurrency,
      durationMs: groupDurationMs,
    });
    const verdict = groupCommitVerdict(group.single, group.batched);
    const before = sum(growth.bytesBefore);
    const after = sum(growth.bytesAfter);
    const s = soak.cost;
    const e = empty.cost;
    report(
      "soak",
      [
        row("soak_refresh_per_s", s.load.perSecond, "calls/s", e.load.perSecond),
        row("soak_refresh_p99_ms", s.load.p99, "ms", e.load.p99),
        row("soak_paired_refresh_per_s", pairedFull.perSecond, "calls/s", pairedEmpty.perSecond),
        row("soak_paired_refresh_p99_ms", pairedFull.p99, "ms", pairedEmpty.p99),
        row(
          "soak_refresh_ratio",
          pairedFull.perSecond / pairedEmpty.perSecond,
          "of empty db's, paired (target ≥ 0.9)",
        ),
        row("soak_refresh_service_cpu_us", s.serviceCpuUs, "µs/call", e.serviceCpuUs),
        row("soak_refresh_db_cpu_us", s.dbCpuUs, "µs/call", e.dbCpuUs),
        row("soak_refresh_load_cpu_us", s.loadCpuUs, "µs/call", e.loadCpuUs),
        row("soak_wal_bytes_per_refresh", perCall(s, "walBytes"), "bytes", perCall(e, "walBytes")),
        row("soak_wal_fpi_per_refresh", perCall(s, "walFpi"), "pages", perCall(e, "walFpi")),
        row("soak_blocks_read_per_refresh", perCall(s, "blocksRead"), "blocks", perCall(e, "blocksRead")),
        row("soak_growth_refreshes", growth.load.calls, "refreshes", growthRefreshes),
        row("soak_bytes_before_mb", before / 1_048_576, "MB"),
        row("soak_bytes_after_mb", after / 1_048_576, "MB"),
        row("soak_table_growth_ratio", after / before, "after / before (target ≤ 1.05)"),
        row("soak_preload_s", fullSide.preloadS, "s"),
        row("group_single_per_s", group.single.perSecond, "rotations/s"),
        row("group_batched_per_s", group.batched.perSecond, "rotations/s", group.single.perSecond),
        row("group_single_p99_ms", group.single.p99, "ms"),
        row("group_batched_p99_ms", group.batched.p99, "ms", group.single.p99),
        row("group_single_db_cpu_us", group.single.dbCpuUs, "µs/rotation"),
        row("group_batched_db_cpu_us", group.batched.dbCpuUs, "µs/rotation", group.single.dbCpuUs),
        row("group_single_client_cpu_us", group.single.clientCpuUs, "µs/rotation"),
        row(
          "group_batched_client_cpu_us",
          group.batched.clientCpuUs,
          "µs/rotation",
          group.single.clientCpuUs,
        ),
      ],
      {
        sessions,
        emptySessions,
        durationS: durationMs / 1000,
        warmupS: warmupMs / 1000,
        concurrency,
        drivers,
        growthRefreshes,
        growthRefreshesDone: growth.load.calls,
        growthRefreshPerS: Math.round(growth.load.perSecond),
        loadAverage: { empty: empty.loadAverage, soak: soak.loadAverage },
        errors: {
          empty: e.load.errors,
          soak: s.load.errors,
          pairedEmpty: pairedEmpty.errors,
          pairedSoak: pairedFull.errors,
          growth: growth.load.errors,
        },
        bytesMbBefore: mb(growth.bytesBefore),
        bytesMbAfter: mb(growth.bytesAfter),
        ownBackendsCpuUs: { empty: Math.round(e.ownBackendsCpuUs), soak: Math.round(s.ownBackendsCpuUs) },
        postgres,
        io: { empty: e.io, soak: s.io },
        hotUpdateShare: { empty: e.hotUpdateShare, soak: s.hotUpdateShare },
        groupCommit: {
          how: "bench-only SQL: one guarded UPDATE of a one-row session (notes/refresh-storage.md) per rotation vs the service's group commit (group-commit.ts defaults: 1 statement in flight, ≤ 64 rows per UPDATE … FROM unnest)",
          sessions: groupSessions,
          durationS: groupDurationMs / 1000,
          single: group.single,
          batched: group.batched,
          pays: verdict.pays,
          batchedOverSingle: {
            throughput: round(verdict.throughput),
            dbCpu: round(verdict.dbCpu),
            p99: round(verdict.p99),
          },
          rule: "pays = throughput ≥ 1.1× or Postgres CPU per rotation ≤ 0.9×, with p99 at most 2×",
        },
        how: "gatehouse serve in its own process; sessions preloaded by COPY (bench/lib/soak-preload.ts); random sessions refreshed from separate driver processes; all on this machine's 2 cores",
        allocator: imageAllocator().description,
      },
    );
  } finally {
    for (const side of sides) await closeSide(side);
    const c = new pg.Client({ connectionString: DATABASE_URL });
    await c.connect();
    for (const schema of schemas) await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
}

await main();
