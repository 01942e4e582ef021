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
 *    (bench/lib/soak-preload.ts), Refresh of random ones for `--duration` s: `soak_refresh_per_s`,
 *    its p99, and `soak_refresh_ratio` = soak / empty. Then `--growth-refreshes` more refreshes
 *    (stopping at `--growth-max-duration` s whatever the count) and `soak_table_growth_ratio`: table +
 *    index + TOAST bytes of the schema's tables after / before them.
 * 3. Group commit for rotations, at the SQL level (bench/lib/rotation-group-commit.ts): one UPDATE per
 *    rotation against one UPDATE per group, on `--group-sessions` sessions for `--group-duration` s each.
 *    The service itself groups its fast-path rotations (services/token/store/rotation-batcher.ts), so
 *    steps 1 and 2 measure it with group commit; bench/token-service.ts gives the service-level gain.
 *
 * Beside each window's rate and CPU: what it cost Postgres in pages (bench/lib/pg-io-stats.ts), WAL
 * bytes, full-page images and blocks read from outside shared_buffers per refresh, read once the
 * statistics have settled (`--stats-settle` s at each end of a window), and the server settings that
 * decide them (`notes.postgres`). The SQL per refresh is the same in both windows, so these are what
 * separates them. TEST_DATABASE_URL points the whole run at another server, e.g. one sized for the
 * table (docs/operations.md).
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
import { capacitySettings, DATABASE_URL, startTokenService } from "./lib/bench-processes.ts";
import { report, row } from "./lib/bench-results.ts";
import { measureWindow, type WindowCost } from "./lib/measured-window.ts";
import { type PgIo, pgCacheSettings } from "./lib/pg-io-stats.ts";
import { schemaBytes } from "./lib/pg-table-stats.ts";
import { compareGroupCommit, type RotationRun } from "./lib/rotation-group-commit.ts";
import { preloadedTokens, preloadLiveSessions, serviceKeys } from "./lib/soak-preload.ts";
import { type LoadResult, startLoadDrivers } from "./lib/token-load.ts";

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

interface SoakResult {
  preloadS: number;
  refresh: WindowCost;
  /** 1-minute load average as the measured window started and ended: the machine is shared. */
  loadAverage: [number, number];
  growth?: { load: LoadResult; bytesBefore: Record<string, number>; bytesAfter: Record<string, number> };
}

/** A schema preloaded with `count` live sessions, `gatehouse serve` on it, Refresh for the duration. */
async function refreshOver(count: number, kind: string, growth: boolean): Promise<SoakResult> {
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
  // The same drivers throughout: each remembers the current token of every session it refreshed.
  const load = startLoadDrivers(drivers);
  try {
    const task = {
      port: server.grpcPort,
      clientId,
      secret,
      mode: "refresh-preloaded" as const,
      preloaded: { tokens, count },
    };
    await load.drive({ ...task, durationMs: warmupMs }, concurrency);
    const target = {
      databaseUrl: DATABASE_URL,
      schema,
      servicePid: server.child.pid!,
      statsSettleMs: args["stats-settle"] * 1000,
    };
    let loadAtStart = 0;
    const refresh = await measureWindow(target, (atStart) =>
      load.drive({ ...task, durationMs }, concurrency, async () => {
        await atStart();
        loadAtStart = loadavg()[0]!;
      }),
    );
    const loadAverage: [number, number] = [loadAtStart, loadavg()[0]!];
    console.log(
      `${kind}: ${refresh.load.perSecond.toFixed(0)} refreshes/s, p99 ${refresh.load.p99.toFixed(1)} ms`,
    );
    if (!growth) return { preloadS, refresh, loadAverage };
    const db = new pg.Client({ connectionString: DATABASE_URL });
    await db.connect();
    try {
      const bytesBefore = await schemaBytes(db, schema);
      const grown = await load.drive(
        { ...task, durationMs: growthMaxMs, maxCalls: growthRefreshes },
        concurrency,
      );
      const bytesAfter = await schemaBytes(db, schema);
      return { preloadS, refresh, loadAverage, growth: { load: grown, bytesBefore, bytesAfter } };
    } finally {
      await db.end();
    }
  } finally {
    load.close();
    await server.stop();
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
  try {
    const empty = await refreshOver(emptySessions, "empty", false);
    const soak = await refreshOver(sessions, "full", true);
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
    const growth = soak.growth!;
    const before = sum(growth.bytesBefore);
    const after = sum(growth.bytesAfter);
    const s = soak.refresh;
    const e = empty.refresh;
    report(
      "soak",
      [
        row("soak_refresh_per_s", s.load.perSecond, "calls/s", e.load.perSecond),
        row("soak_refresh_p99_ms", s.load.p99, "ms", e.load.p99),
        row("soak_refresh_ratio", s.load.perSecond / e.load.perSecond, "of empty db's (target ≥ 0.9)"),
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
        row("soak_preload_s", soak.preloadS, "s"),
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
        errors: { empty: e.load.errors, soak: s.load.errors, growth: growth.load.errors },
        bytesMbBefore: mb(growth.bytesBefore),
        bytesMbAfter: mb(growth.bytesAfter),
        ownBackendsCpuUs: { empty: Math.round(e.ownBackendsCpuUs), soak: Math.round(s.ownBackendsCpuUs) },
        postgres,
        io: { empty: e.io, soak: s.io },
        hotUpdateShare: { empty: e.hotUpdateShare, soak: s.hotUpdateShare },
        groupCommit: {
          how: "bench-only SQL: one guarded UPDATE of a one-row session (notes/refresh-storage.md) per rotation vs session-insert-batcher's policy (≤ 2 statements in flight, ≤ 64 rows per UPDATE … FROM unnest)",
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
      },
    );
  } finally {
    const c = new pg.Client({ connectionString: DATABASE_URL });
    await c.connect();
    for (const schema of schemas) await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
}

await main();
