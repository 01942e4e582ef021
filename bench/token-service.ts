/**
 * Token service throughput: Issue/s and Refresh/s over native gRPC against real Postgres, with
 * p50/p99 latency, next to the limits measured in the same run — the bare rotation (the same SQL
 * statement the service runs) driven straight through `pg` at the same concurrency, and raw
 * Ed25519 signing on one core.
 *
 *   npx tsx bench/token-service.ts [--duration 10] [--concurrency 32] [--drivers 1] [--peer 1] [--pool 0]
 *                                  [--stats-settle 11] [--warmup 10]
 *
 * `--pool 0` (the default) sizes the service's database pool to the concurrency, at most 32.
 * The peer for Refresh, measured in the same run at the same concurrency: oidc-provider's refresh
 * grant with rotation on Postgres (bench/lib/oidc-provider-peer.ts says how it is configured);
 * `--peer 0` skips it.
 * The service runs as its own process (`gatehouse serve`); load comes from separate driver processes
 * (bench/lib/token-load.ts), all on loopback. Beside throughput: CPU per call of the service process
 * and of Postgres, and rows written per Refresh, over each measured window (bench/lib/measured-window.ts).
 * Then the same Issue and Refresh windows against a second `gatehouse serve` with tracing on
 * (every call sampled, spans exported over OTLP/HTTP to a receiver in this process):
 * `*_traced` rows, whose limit is the untraced figure of the same run.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { createDatabase } from "../services/shared/database/index.ts";
import { poolExecutor } from "../services/token/store/sql-executor.ts";
import { createSqlTokenStore } from "../services/token/store/sql-token-store.ts";
import { createEd25519Signer, ed25519Implementation } from "../services/token/tokens/ed25519-signing.ts";
import {
  deriveNextRefreshToken,
  generateRefreshToken,
  hashRefreshToken,
} from "../services/token/tokens/refresh-token-format.ts";
import {
  assertionRefreshRows,
  measureAssertionRefresh,
  startAssertionBench,
} from "./lib/assertion-refresh.ts";
import { benchArgs } from "./lib/bench-args.ts";
import { createBenchSchema } from "./lib/bench-client.ts";
import { capacitySettings, startTokenService, type TokenServiceProcess } from "./lib/bench-processes.ts";
import { percentile, report, row } from "./lib/bench-results.ts";
import { imageAllocator } from "./lib/image-allocator.ts";
import { measureWindow } from "./lib/measured-window.ts";
import { measureOAuthRefresh, oauthRefreshRows } from "./lib/oauth-refresh.ts";
import { measureOidcProviderRefresh, OIDC_PROVIDER_CONFIG } from "./lib/oidc-provider-peer.ts";
import { startOtlpReceiver } from "./lib/otlp-receiver.ts";
import { driveLoad } from "./lib/token-load.ts";

const BASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const args = benchArgs("npx tsx bench/token-service.ts [flags]", {
  duration: 10,
  concurrency: 32,
  drivers: 1,
  peer: 1,
  pool: 0,
  // Seconds to let Postgres flush table statistics before reading rows written (pg-table-stats.ts).
  "stats-settle": 11,
  // Seconds of Issue, then of Refresh, before the windows (see warmUp).
  warmup: 10,
});

/** The limit for Refresh: the same rotation statement through pg, no RPC, no signing, no auth. */
async function bareRotation(
  url: string,
  schema: string,
  clientId: string,
  concurrency: number,
  durationMs: number,
) {
  const db = await createDatabase({ kind: "postgres", url, schema }, { poolSize: concurrency });
  const store = createSqlTokenStore(poolExecutor(db.pool!));
  const key = randomBytes(32);
  const macKey = { kid: "rk-mac-bench", key: randomBytes(32) };
  const tokens: string[] = [];
  const sessions: { sessionId: string; generation: number }[] = [];
  const now = () => new Date();
  for (let s = 0; s < concurrency; s++) {
    sessions[s] = { sessionId: randomUUID(), generation: 1 };
    tokens[s] = generateRefreshToken(sessions[s]!.sessionId, macKey);
    const t = new Date();
    await store.createSession({
      sessionId: sessions[s]!.sessionId,
      subject: `limit-${s}`,
      clientId,
      tenant: null,
      scopes: ["orders:read"],
      audience: ["orders"],
      claims: null,
      signingKid: "k",
      now: t,
      idleExpiresAt: new Date(t.getTime() + 86_400_000),
      expiresAt: new Date(t.getTime() + 864_000_000),
      device: { userAgent: null, ipAddress: null, name: null },
      refreshTokenHash: hashRefreshToken(tokens[s]!),
      refreshMacKid: macKey.kid,
    });
  }
  let calls = 0;
  const latencies: number[] = [];
  const end = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, s) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const hash = hashRefreshToken(tokens[s]!);
        const family = sessions[s]!;
        const successor = deriveNextRefreshToken(tokens[s]!, family, key, macKey);
        const r = await store.rotateIfLive({
          sessionId: family.sessionId,
          presentedGeneration: family.generation,
          presentedHash: hash,
          successorHash: hashRefreshToken(successor),
          now: now(),
          idleExpiresAt: new Date(Date.now() + 86_400_000),
          signingKid: "k",
          callerClientId: clientId,
          successorKid: "rk",
          macKid: macKey.kid,
          allowed: { audiences: ["orders"], tenants: null, subjectPrefixes: [] },
        });
        if (!r) throw new Error("bare rotation did not rotate");
        tokens[s] = successor;
        family.generation++;
        calls++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  await db.close();
  latencies.sort((a, b) => a - b);
  return { perSecond: calls / (durationMs / 1000), p99: percentile(latencies, 99) };
}

/**
 * The anchor for Issue: raw Ed25519 signatures per second of a token-sized input on one core, by
 * the signer the service uses (libsodium where it loads, ed25519-signing.ts).
 */
function rawSignPerSecond(durationMs: number): number {
  const signer = createEd25519Signer(generateKeyPairSync("ed25519").privateKey);
  const input = Buffer.alloc(420, 97);
  let n = 0;
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) signer(input);
    n += 100;
  }
  return n / (durationMs / 1000);
}

async function main() {
  const durationMs = args.duration * 1000;
  const concurrency = Math.max(1, Math.floor(args.concurrency));
  const drivers = Math.max(1, Math.floor(args.drivers));
  const pool = args.pool > 0 ? Math.floor(args.pool) : Math.min(concurrency, 32);
  const statsSettleS = args["stats-settle"];
  const withPeer = args.peer > 0;
  const schema = `bench_${randomBytes(4).toString("hex")}`;
  const { secret } = await createBenchSchema(BASE_URL, schema);
  const setup = await createDatabase({ kind: "postgres", url: BASE_URL, schema });
  // Refresh authenticated by a service-account assertion (bench/lib/assertion-refresh.ts).
  const assertionBench = await startAssertionBench();
  await assertionBench.register(setup.prisma);
  await setup.close();

  // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the service.
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  let server: TokenServiceProcess | undefined;
  // One master key for both services (untraced, then traced) on the schema's signing keys.
  const masterKey = randomBytes(32).toString("base64");
  try {
    server = await startTokenService(
      { ...capacitySettings(pool), GATEHOUSE_MASTER_KEY: masterKey, ...assertionBench.env },
      { schema, nodeArgs, showLogs: true },
    );
    const task = { port: server.grpcPort, clientId: "bench", secret };
    const target = { databaseUrl: BASE_URL, schema, servicePid: server.child.pid! };
    // Rows are counted for Refresh only: its window waits for Postgres' statistics at both ends.
    const counted = { ...target, statsSettleMs: statsSettleS * 1000 };
    await warmUp(task, concurrency, drivers);
    const issue = await measureWindow(target, (atStart) =>
      driveLoad({ ...task, mode: "issue", durationMs }, concurrency, drivers, atStart),
    );
    const refresh = await measureWindow(counted, (atStart) =>
      driveLoad({ ...task, mode: "refresh", durationMs }, concurrency, drivers, atStart),
    );
    // OAuth refresh grant over /oauth2/token, right after RPC Refresh, its limit (bench/lib/oauth-refresh.ts).
    const oauthRefresh = await measureOAuthRefresh({
      httpPort: server.httpPort,
      clientId: "bench",
      secret,
      concurrency,
      drivers,
      durationMs,
    });
    const assertionRefresh = await measureAssertionRefresh({
      grpcPort: server.grpcPort,
      assertion: await assertionBench.mint("https://bench.local"),
      concurrency,
      drivers,
      durationMs,
    });
    await server.stop();
    const traced = await measureTraced(
      { ...capacitySettings(pool), GATEHOUSE_MASTER_KEY: masterKey },
      schema,
      (port) => ({ port, clientId: "bench", secret }),
      (pid) => ({ databaseUrl: BASE_URL, schema, servicePid: pid }),
      { durationMs, concurrency, drivers },
    );
    const limit = await bareRotation(BASE_URL, schema, "bench", concurrency, durationMs);
    const peer = withPeer
      ? await measureOidcProviderRefresh({
          databaseUrl: BASE_URL,
          concurrency,
          durationMs,
          storage: "postgres",
        })
      : undefined;
    const signLimit = rawSignPerSecond(Math.min(durationMs, 3000));
    report(
      "token-service",
      [
        row("issue_per_s", issue.load.perSecond, "calls/s", signLimit),
        row("issue_p50_ms", issue.load.p50, "ms"),
        row("issue_p99_ms", issue.load.p99, "ms"),
        row("refresh_per_s", refresh.load.perSecond, "calls/s", limit.perSecond),
        row("refresh_p50_ms", refresh.load.p50, "ms"),
        row("refresh_p99_ms", refresh.load.p99, "ms", limit.p99),
        row("refresh_limit_per_s", limit.perSecond, "rotations/s"),
        ...oauthRefreshRows(oauthRefresh, refresh.load),
        ...assertionRefreshRows(assertionRefresh, refresh.load),
        ...(peer
          ? [
              row("refresh_per_s_vs_oidc_provider", refresh.load.perSecond, "calls/s", peer.perSecond),
              row("refresh_p99_ms_vs_oidc_provider", refresh.load.p99, "ms", peer.p99),
              row("oidc_provider_refresh_per_s", peer.perSecond, "grants/s"),
            ]
          : []),
        row("ed25519_sign_per_s", signLimit, "signs/s"),
        // Tracing on (all sampled, OTLP export) beside the figures above; limit = untraced.
        row("issue_per_s_traced", traced.issue.load.perSecond, "calls/s", issue.load.perSecond),
        row("refresh_per_s_traced", traced.refresh.load.perSecond, "calls/s", refresh.load.perSecond),
        row("issue_p99_ms_traced", traced.issue.load.p99, "ms", issue.load.p99),
        row("refresh_p99_ms_traced", traced.refresh.load.p99, "ms", refresh.load.p99),
        row("refresh_service_cpu_us_traced", traced.refresh.serviceCpuUs, "µs/call", refresh.serviceCpuUs),
        row("refresh_target_ratio", refresh.load.perSecond / 2500, "of 2,500/s target"),
        row("issue_target_ratio", issue.load.perSecond / 3000, "of 3,000/s target"),
        // CPU per call over each measured window; the limit column holds the target.
        row("issue_service_cpu_us", issue.serviceCpuUs, "µs/call"),
        row("issue_db_cpu_us", issue.dbCpuUs, "µs/call"),
        row("refresh_service_cpu_us", refresh.serviceCpuUs, "µs/call", 200),
        row("refresh_db_cpu_us", refresh.dbCpuUs, "µs/call", 200),
        row("refresh_rows_written", refresh.rowsWritten!, "rows/call", 1),
        // The load generator's own CPU per call: on 2 shared cores, service + Postgres + this is
        // what one call costs the machine (2,500 Refresh/s leaves 800 µs for all three).
        row("issue_load_cpu_us", issue.loadCpuUs, "µs/call"),
        row("refresh_load_cpu_us", refresh.loadCpuUs, "µs/call"),
        // The same Postgres CPU counting only the backends of the service's connections: what is left
        // when other users of this shared Postgres (and its background processes) are taken out.
        row("issue_db_own_backends_cpu_us", issue.ownBackendsCpuUs, "µs/call"),
        row("refresh_db_own_backends_cpu_us", refresh.ownBackendsCpuUs, "µs/call", 200),
      ],
      {
        concurrency,
        drivers,
        durationS: durationMs / 1000,
        allocator: imageAllocator().description,
        signer: ed25519Implementation,
        errors: {
          issue: issue.load.errors,
          refresh: refresh.load.errors,
          oauthRefresh: oauthRefresh.errors,
          assertionRefresh: assertionRefresh.errors,
          oidcProvider: peer?.errors,
          issueTraced: traced.issue.load.errors,
          refreshTraced: traced.refresh.load.errors,
        },
        tracing: {
          how: "a second gatehouse serve with OTEL_EXPORTER_OTLP_ENDPOINT (sampler parentbased_always_on, every call a root span), exporting to an OTLP/HTTP receiver in the bench process that drains and counts",
          ...traced.received,
        },
        oidcProvider: peer ? OIDC_PROVIDER_CONFIG : "skipped (--peer 0)",
        how: "gatehouse serve in its own process on real Postgres; gRPC drivers (bare HTTP/2, bench/lib/grpc-h2-client.ts) in separate processes; all on this machine's 2 cores",
        cpu:
          "utime+stime from /proc over the measured window, divided by successful calls: service = the gatehouse serve process; " +
          "db = every process named postgres (background processes and other users of this shared Postgres included); " +
          "ownBackends = only the backends of the service's own connections; " +
          "load = the driver processes' own process.cpuUsage() over their measured loop",
        rowsWritten: {
          how: "pg_stat_user_tables n_tup_ins + n_tup_upd over the window, read once the counters stopped moving",
          statsSettleS,
          refresh: {
            perCall: round(refresh.rowsWritten!),
            hotUpdateShare: refresh.hotUpdateShare === null ? null : round(refresh.hotUpdateShare),
            ...refresh.rows,
          },
        },
        keycloakSizingAnchor: "Keycloak sizing guide budgets 120 refreshes/s per vCPU",
      },
    );
  } finally {
    await server?.stop();
    await assertionBench.close();
    const c = new pg.Client({ connectionString: BASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

/**
 * Both measured paths run before either window, long enough for V8 to finish compiling them: the
 * figures are a running service's, which is what a cluster is sized with. With 1.5 s of each, V8
 * was still optimising through the Refresh window (`--trace-opt`: optimisations went on for ~15 s
 * of traffic), and its compiler threads used ~40 µs per Refresh in the first seconds against
 * 5–20 later (per-thread CPU from /proc, 2026-12-06); the main thread's share did not move.
 */
async function warmUp(
  task: { port: number; clientId: string; secret: string },
  concurrency: number,
  drivers: number,
): Promise<void> {
  for (const mode of ["issue", "refresh"] as const)
    await driveLoad({ ...task, mode, durationMs: args.warmup * 1000 }, concurrency, drivers);
}

/**
 * Issue and Refresh windows against a `gatehouse serve` with tracing on, on the same schema, after
 * the untraced one stopped (so they never share the cores).
 */
async function measureTraced(
  env: Record<string, string>,
  schema: string,
  task: (port: number) => { port: number; clientId: string; secret: string },
  target: (pid: number) => { databaseUrl: string; schema: string; servicePid: number },
  load: { durationMs: number; concurrency: number; drivers: number },
) {
  const receiver = await startOtlpReceiver({ keep: false });
  const server = await startTokenService(
    { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: "gatehouse-bench" },
    { schema, showLogs: true },
  );
  try {
    const t = task(server.grpcPort);
    const where = target(server.child.pid!);
    const { durationMs, concurrency, drivers } = load;
    await warmUp(t, concurrency, drivers);
    const issue = await measureWindow(where, (atStart) =>
      driveLoad({ ...t, mode: "issue", durationMs }, concurrency, drivers, atStart),
    );
    const refresh = await measureWindow(where, (atStart) =>
      driveLoad({ ...t, mode: "refresh", durationMs }, concurrency, drivers, atStart),
    );
    await server.stop();
    return { issue, refresh, received: receiver.received() };
  } finally {
    await server.stop();
    await receiver.close();
  }
}

await main();
