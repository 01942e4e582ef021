/**
 * Token service throughput: Issue/s and Refresh/s over native gRPC against real Postgres, with
 * p50/p99 latency, next to the limits measured in the same run — the bare rotation (the same SQL
 * statement the service runs) driven straight through `pg` at the same concurrency, and raw
 * Ed25519 signing on one core.
 *
 *   npx tsx bench/token-service.ts [--duration 10] [--concurrency 32] [--drivers 1] [--peer 0] [--pool N]
 *
 * The peer for Refresh, measured in the same run at the same concurrency: oidc-provider's refresh
 * grant with rotation on Postgres (bench/lib/oidc-provider-peer.ts says how it is configured);
 * `--peer 0` skips it.
 * The service runs as its own process (`gatehouse serve`); load comes from separate driver processes
 * (a grpc-js client in one process tops out near 3k calls/s), all on loopback.
 */
import { type ChildProcess, fork } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID, sign } from "node:crypto";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import {
  IssueRequestSchema,
  RefreshRequestSchema,
  TokenService,
} from "../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { createDatabase, migrate } from "../services/shared/database/index.ts";
import { grpcServiceDefinition } from "../services/shared/rpc/index.ts";
import { basicAuthorization } from "../services/token/clients/basic-credentials.ts";
import { generateClientSecret, hashClientSecret } from "../services/token/clients/client-secret.ts";
import { poolExecutor } from "../services/token/store/sql-executor.ts";
import { createSqlTokenStore } from "../services/token/store/sql-token-store.ts";
import {
  deriveSuccessor,
  generateRefreshToken,
  hashRefreshToken,
} from "../services/token/tokens/refresh-token-format.ts";
import {
  assertionRefreshRows,
  measureAssertionRefresh,
  startAssertionBench,
} from "./lib/assertion-refresh.ts";
import { startTokenService, type TokenServiceProcess } from "./lib/bench-processes.ts";
import { flag, percentile, report, row } from "./lib/bench-results.ts";
import { measureOAuthRefresh, oauthRefreshRows } from "./lib/oauth-refresh.ts";
import { measureOidcProviderRefresh, OIDC_PROVIDER_CONFIG } from "./lib/oidc-provider-peer.ts";

const BASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const here = fileURLToPath(import.meta.url);

interface DriverTask {
  mode: "issue" | "refresh";
  port: number;
  clientId: string;
  secret: string;
  slots: number;
  durationMs: number;
}

interface DriverResult {
  calls: number;
  errors: Record<string, number>;
  latenciesMs: number[];
}

// ---------------------------------------------------------------- driver process
async function runDriver(task: DriverTask): Promise<DriverResult> {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(TokenService), "TokenService");
  const channels = [0, 1].map(
    () =>
      new Ctor(`127.0.0.1:${task.port}`, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
      }),
  );
  const md = new grpc.Metadata();
  md.set("authorization", basicAuthorization(task.clientId, task.secret));
  const call = (slot: number, method: "issue" | "refresh", req: unknown) =>
    new Promise<{ refreshToken: string }>((resolve, reject) =>
      (channels[slot % 2] as unknown as Record<string, (...a: unknown[]) => void>)[method]!(
        req,
        md,
        (err: grpc.ServiceError | null, res: { refreshToken: string }) => (err ? reject(err) : resolve(res)),
      ),
    );
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let calls = 0;
  const tokens: string[] = [];
  if (task.mode === "refresh") {
    for (let s = 0; s < task.slots; s++) {
      tokens[s] = (
        await call(
          s,
          "issue",
          create(IssueRequestSchema, {
            subject: `bench-${randomUUID()}`,
            audience: ["orders"],
            scopes: ["orders:read"],
          }),
        )
      ).refreshToken;
    }
  }
  const end = performance.now() + task.durationMs;
  await Promise.all(
    Array.from({ length: task.slots }, async (_, s) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          if (task.mode === "issue") {
            await call(
              s,
              "issue",
              create(IssueRequestSchema, {
                subject: `bench-${s}-${calls}`,
                audience: ["orders"],
                scopes: ["orders:read"],
              }),
            );
          } else {
            tokens[s] = (
              await call(s, "refresh", create(RefreshRequestSchema, { refreshToken: tokens[s]! }))
            ).refreshToken;
          }
          calls++;
          latencies.push(performance.now() - t0);
        } catch (err) {
          const code = String((err as grpc.ServiceError).code ?? "unknown");
          errors[code] = (errors[code] ?? 0) + 1;
        }
      }
    }),
  );
  for (const c of channels) c.close();
  return { calls, errors, latenciesMs: latencies };
}

if (process.argv[2] === "--driver") {
  process.once("message", async (task: DriverTask) => {
    const result = await runDriver(task);
    process.send!(result, () => process.exit(0));
  });
} else {
  await main();
}

// ---------------------------------------------------------------- coordinator
async function drive(task: Omit<DriverTask, "slots">, concurrency: number, drivers: number) {
  const children: ChildProcess[] = [];
  const results = await Promise.all(
    Array.from({ length: drivers }, (_, i) => {
      const child = fork(here, ["--driver"], { execArgv: ["--import", "tsx"], stdio: "inherit" });
      children.push(child);
      const slots = Math.floor(concurrency / drivers) + (i < concurrency % drivers ? 1 : 0);
      return new Promise<DriverResult>((resolve, reject) => {
        child.once("message", (m) => resolve(m as DriverResult));
        child.once("exit", (code) => code !== 0 && reject(new Error(`driver exited ${code}`)));
        child.send({ ...task, slots });
      });
    }),
  );
  const latencies = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const calls = results.reduce((n, r) => n + r.calls, 0);
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    perSecond: calls / (task.durationMs / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    calls,
    errors,
  };
}

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
  const tokens: string[] = [];
  const now = () => new Date();
  for (let s = 0; s < concurrency; s++) {
    tokens[s] = generateRefreshToken();
    const t = new Date();
    await store.createSession({
      sessionId: randomUUID(),
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
        const successor = deriveSuccessor(tokens[s]!, key);
        const r = await store.rotateIfLive({
          presentedHash: hash,
          successorHash: hashRefreshToken(successor),
          now: now(),
          idleExpiresAt: new Date(Date.now() + 86_400_000),
          signingKid: "k",
          callerClientId: clientId,
          successorKid: "rk",
          allowed: { audiences: ["orders"], tenants: null, subjectPrefixes: [] },
        });
        if (!r) throw new Error("bare rotation did not rotate");
        tokens[s] = successor;
        calls++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  await db.close();
  latencies.sort((a, b) => a - b);
  return { perSecond: calls / (durationMs / 1000), p99: percentile(latencies, 99) };
}

/** The anchor for Issue: raw Ed25519 signatures per second of a token-sized input on one core. */
function rawSignPerSecond(durationMs: number): number {
  const { privateKey } = generateKeyPairSync("ed25519");
  const input = Buffer.alloc(420, 97);
  let n = 0;
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) sign(null, input, privateKey);
    n += 100;
  }
  return n / (durationMs / 1000);
}

async function main() {
  const durationMs = flag("duration", 10) * 1000;
  const concurrency = flag("concurrency", 32);
  const drivers = flag("drivers", 1);
  const pool = flag("pool", Math.min(concurrency, 32));
  const withPeer = !process.argv.includes("--peer") || flag("peer", 0) > 0;
  const schema = `bench_${randomBytes(4).toString("hex")}`;
  await migrate({ kind: "postgres", url: BASE_URL, schema });
  const setup = await createDatabase({ kind: "postgres", url: BASE_URL, schema });
  const secret = generateClientSecret();
  await setup.prisma.client.create({
    data: {
      id: "bench",
      name: "bench",
      secretHash: await hashClientSecret(secret),
      roles: ["issuer"],
      allowedAudiences: ["orders"],
      allowedScopes: ["orders:read"],
    },
  });
  // Refresh authenticated by a service-account assertion (bench/lib/assertion-refresh.ts).
  const assertionBench = await startAssertionBench();
  await assertionBench.register(setup.prisma);
  await setup.close();

  // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the service.
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  let server: TokenServiceProcess | undefined;
  try {
    server = await startTokenService(
      {
        GATEHOUSE_LOG_LEVEL: "warn",
        GATEHOUSE_DATABASE_POOL_SIZE: String(pool),
        // One client is the whole load here: measure capacity, not the per-client limits.
        GATEHOUSE_RATE_LIMIT_ISSUE: "off",
        GATEHOUSE_RATE_LIMIT_REFRESH: "off",
        GATEHOUSE_MAX_IN_FLIGHT_PER_CLIENT: "off",
        ...assertionBench.env,
      },
      { schema, nodeArgs, showLogs: true },
    );
    const task = { port: server.grpcPort, clientId: "bench", secret };
    await drive({ ...task, mode: "issue", durationMs: 1000 }, concurrency, drivers); // warm-up
    const issue = await drive({ ...task, mode: "issue", durationMs }, concurrency, drivers);
    const refresh = await drive({ ...task, mode: "refresh", durationMs }, concurrency, drivers);
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
        row("issue_per_s", issue.perSecond, "calls/s", signLimit),
        row("issue_p50_ms", issue.p50, "ms"),
        row("issue_p99_ms", issue.p99, "ms"),
        row("refresh_per_s", refresh.perSecond, "calls/s", limit.perSecond),
        row("refresh_p50_ms", refresh.p50, "ms"),
        row("refresh_p99_ms", refresh.p99, "ms", limit.p99),
        row("refresh_limit_per_s", limit.perSecond, "rotations/s"),
        ...oauthRefreshRows(oauthRefresh, refresh),
        ...assertionRefreshRows(assertionRefresh, refresh),
        ...(peer
          ? [
              row("refresh_per_s_vs_oidc_provider", refresh.perSecond, "calls/s", peer.perSecond),
              row("refresh_p99_ms_vs_oidc_provider", refresh.p99, "ms", peer.p99),
              row("oidc_provider_refresh_per_s", peer.perSecond, "grants/s"),
            ]
          : []),
        row("ed25519_sign_per_s", signLimit, "signs/s"),
        row("refresh_target_ratio", refresh.perSecond / 2500, "of 2,500/s target"),
        row("issue_target_ratio", issue.perSecond / 3000, "of 3,000/s target"),
      ],
      {
        concurrency,
        drivers,
        durationS: durationMs / 1000,
        errors: {
          issue: issue.errors,
          refresh: refresh.errors,
          oauthRefresh: oauthRefresh.errors,
          assertionRefresh: assertionRefresh.errors,
          oidcProvider: peer?.errors,
        },
        oidcProvider: peer ? OIDC_PROVIDER_CONFIG : "skipped (--peer 0)",
        how: "gatehouse serve in its own process on real Postgres; grpc-js drivers in separate processes; all on this machine's 2 cores",
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
