/**
 * The measuring parts of the benchmarks, on the real Postgres: CPU read from /proc, rows written read
 * from Postgres' statistics, the soak's preload, whose sessions must be refreshable through the
 * real Refresh flow (when the refresh data model changes, this fails until soak-preload.ts follows),
 * the load drivers' bare HTTP/2 gRPC client against the real token service, and the soak's drivers
 * refreshing preloaded sessions through it.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTokenService as startBenchService } from "../../bench/lib/bench-processes.ts";
import { connectGrpcH2, GrpcCallError } from "../../bench/lib/grpc-h2-client.ts";
import { imageAllocator } from "../../bench/lib/image-allocator.ts";
import {
  type RowsWritten,
  rowsWrittenBetween,
  schemaBytes,
  settledRowsWritten,
} from "../../bench/lib/pg-table-stats.ts";
import { cpuBetween, postgresPids, processCpuMicros, processTree } from "../../bench/lib/process-cpu.ts";
import {
  preloadedRefreshToken,
  preloadedTokens,
  preloadLiveSessions,
  serviceKeys,
} from "../../bench/lib/soak-preload.ts";
import { startLoadDrivers } from "../../bench/lib/token-load.ts";
import {
  IssueRequestSchema,
  IssueResponseSchema,
  RefreshRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { migrate } from "../../services/shared/database/index.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import { refresh } from "../../services/token/flows/refresh-flow.ts";
import { poolExecutor } from "../../services/token/store/sql-executor.ts";
import { startTokenService } from "../../services/token/token-service.ts";
import { parseRefreshToken } from "../../services/token/tokens/refresh-token-format.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

let tdb: TestDatabase;
let deps: Awaited<ReturnType<typeof flowDeps>>;
let web: ClientRecord;
const clock = testClock(Date.now());

beforeAll(async () => {
  tdb = await useTestDatabase();
  deps = await flowDeps(tdb.db.prisma, poolExecutor(tdb.db.pool!), clock.now);
  web = (await createTestClient(tdb.db.prisma, { id: "web" })).client;
});
afterAll(async () => {
  deps?.stop();
  await tdb?.drop();
});

describe("CPU from /proc", () => {
  it("reads this process's CPU as process.cpuUsage() does, to within a few clock ticks", () => {
    const end = performance.now() + 200;
    while (performance.now() < end) randomBytes(64);
    const own = process.cpuUsage();
    const read = processCpuMicros(process.pid)!;
    expect(Math.abs(read - (own.user + own.system))).toBeLessThan(50_000);
    expect(read).toBeGreaterThan(100_000);
  });

  it("answers undefined for a process that is gone, and counts a process started in between from zero", () => {
    expect(processCpuMicros(2 ** 22 + 1)).toBeUndefined();
    expect(cpuBetween(new Map([[1, 500]]), new Map([[1, 800]]))).toBe(300);
    expect(cpuBetween(new Map(), new Map([[2, 700]]))).toBe(700);
    expect(cpuBetween(new Map([[3, 900]]), new Map())).toBe(0);
  });

  it("finds a child in a process's tree, and Postgres' processes", async () => {
    const child = spawn("sleep", ["5"]);
    try {
      expect(processTree(process.pid)).toContain(child.pid);
      expect(postgresPids().length).toBeGreaterThan(0);
    } finally {
      child.kill();
    }
  });
});

describe("rows written, from pg_stat_user_tables", () => {
  it("counts inserts and updates of the schema once the writer's statistics are flushed", async () => {
    const pool = tdb.db.pool!;
    const reader = await pool.connect();
    const writer = await pool.connect();
    try {
      const before = await settledRowsWritten(reader, tdb.schema, { minWaitMs: 0, quietMs: 0 });
      // The service's pool sets no search_path: name the schema.
      const probe = `"${tdb.schema}".bench_probe`;
      await writer.query(`CREATE TABLE ${probe} (id int PRIMARY KEY, n int, tag text)`);
      await writer.query(`INSERT INTO ${probe} SELECT i, 0, 'x' FROM generate_series(1, 3) AS i`);
      await writer.query(`UPDATE ${probe} SET n = n + 1 WHERE id <= 2`);
      // The writer's counters stay in its own memory until it flushes them; make it flush now.
      await writer.query("SELECT pg_stat_force_next_flush()");
      await writer.query("SELECT 1");
      const after = await settledRowsWritten(reader, tdb.schema, { minWaitMs: 0, quietMs: 500 });
      const delta = rowsWrittenBetween(before, after);
      expect(delta.perTable.bench_probe).toEqual({ inserted: 3, updated: 2, hotUpdated: 2 });
      expect((await schemaBytes(reader, tdb.schema)).bench_probe).toBeGreaterThan(0);
    } finally {
      await writer.query(`DROP TABLE IF EXISTS "${tdb.schema}".bench_probe`);
      writer.release();
      reader.release();
    }
  });

  it("subtracts per table and leaves out tables nothing was written to", () => {
    const at = (ins: number, upd: number, other: number): RowsWritten => ({
      inserted: ins + other,
      updated: upd,
      hotUpdated: upd,
      perTable: {
        sessions: { inserted: ins, updated: upd, hotUpdated: upd },
        clients: { inserted: other, updated: 0, hotUpdated: 0 },
      },
    });
    expect(rowsWrittenBetween(at(10, 4, 1), at(12, 9, 1))).toEqual({
      inserted: 2,
      updated: 5,
      hotUpdated: 5,
      perTable: { sessions: { inserted: 2, updated: 5, hotUpdated: 5 } },
    });
  });
});

describe("soak preload", () => {
  it("writes live sessions whose derived tokens rotate through the real Refresh flow", async () => {
    const tokens = preloadedTokens(randomBytes(8).toString("hex"), deps.macKeys.active());
    const signingKid = deps.keys.active().kid;
    await preloadLiveSessions({
      url: TEST_DATABASE_URL,
      schema: tdb.schema,
      clientId: "web",
      signingKid,
      count: 40,
      tokens,
    });
    const { rows } = await tdb.sql.query(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE refresh_generation = 1 AND refresh_mac_kid = $1
                                                   AND refresh_hash IS NOT NULL)::int AS v2
         FROM sessions WHERE subject LIKE 'soak-%'`,
      [tokens.macKid],
    );
    expect(rows[0]).toEqual({ n: 40, v2: 40 });
    const legacy = await tdb.sql.query("SELECT count(*)::int AS n FROM refresh_tokens");
    expect(legacy.rows[0].n).toBe(0);
    const parsed = parseRefreshToken(preloadedRefreshToken(tokens, 17));
    expect(parsed).toMatchObject({ version: 2, generation: 1, kid: tokens.macKid });
    const kids = async () =>
      (
        await tdb.sql.query(
          `SELECT subject, signing_kid FROM sessions WHERE subject IN ('soak-0', 'soak-17', 'soak-39')
            ORDER BY subject`,
        )
      ).rows;
    const kidsBefore = await kids();
    for (const i of [0, 17, 39]) {
      const first = await refresh(
        deps,
        { client: web, requestId: `r-${i}` },
        create(RefreshRequestSchema, { refreshToken: preloadedRefreshToken(tokens, i) }),
      );
      expect(first.refreshToken).toMatch(/^gthr_/);
      const second = await refresh(
        deps,
        { client: web, requestId: `r2-${i}` },
        create(RefreshRequestSchema, { refreshToken: first.refreshToken! }),
      );
      expect(second.sessionId).toBe(first.sessionId);
    }
    const rotated = await tdb.sql.query(
      "SELECT count(*)::int AS n FROM sessions WHERE subject LIKE 'soak-%' AND refresh_generation = 3",
    );
    expect(rotated.rows[0].n).toBe(3);
    // Refresh wrote the signing kid the preload had written, as it does for one Issue wrote: no
    // indexed column changed, so a soak's first refresh of a session is the HOT update a real one is.
    expect(kidsBefore).toEqual(
      ["soak-0", "soak-17", "soak-39"].map((subject) => ({ subject, signing_kid: signingKid })),
    );
    expect(await kids()).toEqual(kidsBefore);
  });

  it("finds the keys a service on the schema uses, seeded once", async () => {
    const masterKey = randomBytes(32);
    const schema = `${tdb.schema}_mac`;
    await migrate({ kind: "postgres", url: TEST_DATABASE_URL, schema });
    try {
      const first = await serviceKeys(TEST_DATABASE_URL, schema, masterKey);
      const again = await serviceKeys(TEST_DATABASE_URL, schema, masterKey);
      expect(again.macKey.kid).toBe(first.macKey.kid);
      expect(Buffer.from(again.macKey.key).equals(Buffer.from(first.macKey.key))).toBe(true);
      expect(again.signingKid).toBe(first.signingKid);
      const { rows } = await tdb.sql.query(
        `SELECT kid FROM "${schema}".signing_keys WHERE status = 'active'`,
      );
      expect(rows).toEqual([{ kid: first.signingKid }]);
    } finally {
      await tdb.sql.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });
});

describe("the load drivers' gRPC client (bare HTTP/2)", () => {
  it("gets real answers from the token service, and its failures as gRPC status codes", async () => {
    // A schema of its own: the one above holds signing keys under another master key.
    const own = await useTestDatabase();
    const { secret } = await createTestClient(own.db.prisma, { id: "h2-driver" });
    const service = await startTokenService({
      settings: testServiceSettings(),
      database: { kind: "postgres", url: own.url },
      logger: createLogger({ level: "silent", component: "token", pretty: false }),
    });
    const right = connectGrpcH2(service.grpcPort, { authorization: basicAuthorization("h2-driver", secret) });
    const wrong = connectGrpcH2(service.grpcPort, { authorization: basicAuthorization("h2-driver", "nope") });
    try {
      const issue = toBinary(
        IssueRequestSchema,
        create(IssueRequestSchema, { subject: "s", audience: ["orders"] }),
      );
      // Both connections of the client, by slot.
      for (const slot of [0, 1]) {
        const reply = fromBinary(
          IssueResponseSchema,
          await right.unary(slot, "/gatehouse.v1.TokenService/Issue", issue),
        );
        expect(reply.refreshToken).toMatch(/^gthr_/);
        expect(reply.audience).toEqual(["orders"]);
      }
      // A trailers-only refusal, as the service sends it: 16 UNAUTHENTICATED, with its message.
      const refused = await wrong
        .unary(0, "/gatehouse.v1.TokenService/Issue", issue)
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(GrpcCallError);
      expect(refused).toMatchObject({
        code: 16,
        message: expect.stringContaining("client authentication failed"),
      });
      const unknown = await right.unary(0, "/gatehouse.v1.TokenService/Nope", issue).catch((e: unknown) => e);
      expect(unknown).toMatchObject({ code: 12 });
    } finally {
      right.close();
      wrong.close();
      await service.shutdown();
      await own.drop();
    }
  });
});

describe("the soak's load drivers", () => {
  it("refresh preloaded sessions drawn again and again, presenting each one's live token", async () => {
    const own = await useTestDatabase();
    const { secret } = await createTestClient(own.db.prisma, { id: "soak-driver" });
    const settings = testServiceSettings();
    const { macKey, signingKid } = await serviceKeys(TEST_DATABASE_URL, own.schema, settings.masterKey);
    const tokens = preloadedTokens(randomBytes(8).toString("hex"), macKey);
    // 8 sessions for 4 slots: every slot draws from 2, so nearly every call finds its session rotated
    // by an earlier one, in the plan made before the load and across tasks.
    await preloadLiveSessions({
      url: TEST_DATABASE_URL,
      schema: own.schema,
      clientId: "soak-driver",
      signingKid,
      count: 8,
      tokens,
    });
    const service = await startTokenService({
      settings,
      database: { kind: "postgres", url: own.url },
      logger: createLogger({ level: "silent", component: "token", pretty: false }),
    });
    const load = startLoadDrivers(1);
    try {
      const task = {
        port: service.grpcPort,
        clientId: "soak-driver",
        secret,
        mode: "refresh-preloaded" as const,
        preloaded: { tokens, count: 8 },
        durationMs: 600,
      };
      const first = await load.drive(task, 4);
      const second = await load.drive(task, 4);
      expect([first.errors, second.errors]).toEqual([{}, {}]);
      expect(Math.min(first.calls, second.calls)).toBeGreaterThan(8);
      // Each call rotated its session once. A spent token presented instead would have been answered
      // with the successor it already had (inside the grace window) or have revoked the session.
      const { rows } = await own.sql.query(
        `SELECT sum(refresh_generation - 1)::int AS rotations, count(*) FILTER (WHERE revoked_at IS NULL)::int AS live
           FROM sessions`,
      );
      expect(rows[0]).toEqual({ rotations: first.calls + second.calls, live: 8 });
    } finally {
      load.close();
      await service.shutdown();
      await own.drop();
    }
  }, 60_000);
});

describe("the benchmarked service's allocator", () => {
  it("is the image's jemalloc where it is installed, and glibc's malloc when a bench unsets the preload", async () => {
    const mapsJemalloc = (pid: number) => readFileSync(`/proc/${pid}/maps`, "utf8").includes("libjemalloc");
    const allocator = imageAllocator();
    // .ci/run installs libjemalloc2: without it the benchmarks would measure glibc's malloc, not the image's.
    expect(
      allocator.env.LD_PRELOAD,
      `${allocator.description}: apt-get install -y libjemalloc2`,
    ).toBeDefined();
    const asImage = await startBenchService();
    const onGlibc = await startBenchService({ LD_PRELOAD: "" });
    try {
      expect(mapsJemalloc(asImage.child.pid!)).toBe(true);
      expect(mapsJemalloc(onGlibc.child.pid!)).toBe(false);
    } finally {
      await asImage.stop();
      await onGlibc.stop();
    }
  }, 90_000);
});

describe("compare-revisions", () => {
  it("loads two checkouts' services at once and reports ours against the base, leaving no schema", async () => {
    // An A/A run on this checkout, as short as it goes: the figures are noise, their shape is not.
    // The base runs on glibc's malloc (--base-env), as in the allocator's own comparison.
    await promisify(execFile)(
      process.execPath,
      [
        "--import",
        "tsx",
        "bench/compare-revisions.ts",
        "--base",
        ".",
        "--duration",
        "1",
        "--rounds",
        "1",
        "--base-env",
        "LD_PRELOAD=",
      ],
      { timeout: 120_000 },
    );
    const { rows, notes } = JSON.parse(readFileSync("bench/results/compare-revisions.json", "utf8"));
    expect(rows.map((r: { metric: string }) => r.metric)).toEqual([
      "refresh_per_s",
      "refresh_service_cpu_us",
    ]);
    for (const r of rows) {
      expect(r.value).toBeGreaterThan(0);
      expect(r.limit).toBeGreaterThan(0);
    }
    expect(notes.mode).toBe("refresh");
    expect(notes.baseEnv).toEqual({ LD_PRELOAD: "" });
    const left = await tdb.sql.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_cmp_%'");
    expect(left.rows).toEqual([]);
  }, 150_000);
});
