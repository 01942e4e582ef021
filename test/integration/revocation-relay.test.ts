import { create } from "@bufbuild/protobuf";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  IssueRequestSchema,
  RevokeRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { createDatabase, type Database, migrate, openPGlite } from "../../services/shared/database/index.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createMetricsRegistry, type Registry } from "../../services/shared/metrics/index.ts";
import { createInProcessBus } from "../../services/shared/revocation/in-process-bus.ts";
import { createRedisBus } from "../../services/shared/revocation/redis-bus.ts";
import type { RevocationBus } from "../../services/shared/revocation/revocation-bus.ts";
import { decodeRevocationEntry } from "../../services/shared/revocation/revocation-entry.ts";
import type { RevocationEvent } from "../../services/shared/revocation/revocation-events.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import { createStreamFollower } from "../../services/sidecar/revocation-stream/index.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import type { Caller, FlowDeps } from "../../services/token/flows/flow-deps.ts";
import { issue } from "../../services/token/flows/issue-flow.ts";
import { revoke } from "../../services/token/flows/revoke-flow.ts";
import {
  createOutboxRelay,
  type OutboxRelay,
  pgliteOutboxDb,
  poolOutboxDb,
} from "../../services/token/revocation/index.ts";
import { pgliteExecutor, poolExecutor } from "../../services/token/store/sql-executor.ts";
import { createSqlTokenStore } from "../../services/token/store/sql-token-store.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";

const log = createLogger({ level: "silent", component: "test", pretty: false });
const clock = testClock();
const TTL_MS = 3_600_000;

let tdb: TestDatabase;
let tredis: TestRedis;
let proxy: TcpProxy;
let stream: string;
let web: ClientRecord;
let ops: ClientRecord;
let seq = 0;

/** One token service replica: its own pool, bus connection (through the proxy), relay and flow deps. */
interface Replica {
  db: Database;
  metrics: Registry | undefined;
  bus: RevocationBus;
  relay: OutboxRelay;
  deps: FlowDeps & { stop(): void };
}
const replicas: Replica[] = [];
let main: Replica;

async function replica(
  opts: { batchSize?: number; metrics?: boolean; shareKeysWith?: Replica } = {},
): Promise<Replica> {
  const metrics = opts.metrics ? createMetricsRegistry("token", { defaultMetrics: false }) : undefined;
  const db = await createDatabase(
    { kind: "postgres", url: TEST_DATABASE_URL, schema: tdb.schema },
    { poolSize: 6 },
  );
  const bus = createRedisBus({
    url: proxy.url,
    reconnect: { minMs: 20, maxMs: 200 },
    commandTimeoutMs: 1000,
  });
  const relay = createOutboxRelay({
    db: poolOutboxDb(db.pool!),
    bus,
    stream,
    maxAccessTokenTtlMs: TTL_MS,
    logger: log,
    now: clock.now,
    pollIntervalMs: 100,
    retryMinMs: 20,
    retryMaxMs: 200,
    pruneIntervalMs: 0,
    metrics,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
  });
  // A second replica shares the first one's key ring (same master key, same signing keys).
  const base = opts.shareKeysWith
    ? { ...opts.shareKeysWith.deps, store: createSqlTokenStore(poolExecutor(db.pool!)), stop() {} }
    : await flowDeps(db.prisma, poolExecutor(db.pool!), clock.now);
  const r: Replica = { db, metrics, bus, relay, deps: { ...base, publish: relay.publish } };
  replicas.push(r);
  return r;
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  tredis = await useTestRedis("rv-relay");
  proxy = await startTcpProxy({ port: Number(new URL(tredis.url).port || 6379) });
  stream = `${tredis.prefix}revocations`;
  web = (await createTestClient(tdb.db.prisma, { id: "web" })).client;
  ops = (await createTestClient(tdb.db.prisma, { id: "ops", roles: ["revoker"] })).client;
  main = await replica({ metrics: true });
  main.relay.start();
});
afterAll(async () => {
  for (const r of replicas) {
    await r.relay.stop();
    await r.bus.close();
    r.deps.stop();
    await r.db.close();
  }
  await proxy?.stop();
  await tredis?.cleanup();
  await tdb?.drop();
});

const as = (client: ClientRecord): Caller => ({ client, requestId: `req-${++seq}` });
async function login(deps: FlowDeps, subject = `user-${++seq}`) {
  const r = await issue(
    deps,
    as(web),
    create(IssueRequestSchema, { subject, audience: ["orders"], scopes: ["orders:read"] }),
  );
  return { sessionId: r.sessionId!, accessToken: r.accessToken! };
}
async function revoked(p: ReturnType<typeof revoke>) {
  const r = await p;
  return {
    sessionsRevoked: r.sessionsRevoked ?? 0,
    eventIds: r.eventIds ?? [],
    propagated: r.propagated ?? false,
  };
}
const revokeSession = (deps: FlowDeps, sessionId: string, accessOnly = false) =>
  revoked(
    revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "sessionId", value: sessionId }, accessOnly }),
    ),
  );

interface OutboxLine {
  id: string;
  event_id: string;
  type: string;
  payload: Record<string, unknown>;
  occurred_at: Date;
  relevant_until: Date;
  published_at: Date | null;
  stream_id: string | null;
}
const outbox = async (where = "TRUE", params: unknown[] = []) =>
  (
    await tdb.sql.query<OutboxLine>(
      `SELECT o.id::text, event_id::text, type, payload, occurred_at, relevant_until, published_at, stream_id
         FROM revocation_outbox o WHERE ${where} ORDER BY o.id`,
      params,
    )
  ).rows;

/** The stream as it is in Redis (read directly, not through the proxy). */
async function streamEntries(): Promise<{ id: string; event: RevocationEvent | null }[]> {
  const raw = (await tredis.redis.xrange(stream, "-", "+")) as [string, string[]][];
  return raw.map(([id, fields]) => ({ id, event: decodeRevocationEntry(fields) }));
}

/** `fn`'s first truthy result, polled by vi.waitFor. */
function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeout = 5000): Promise<T> {
  return vi.waitFor(async () => (await fn()) || Promise.reject(new Error(`timed out waiting for ${what}`)), {
    timeout,
    interval: 20,
  }) as Promise<T>;
}

/** A metric's value on a replica's registry (summed over series matching `labels`). */
async function metric(name: string, labels: Record<string, string> = {}, on = main): Promise<number> {
  const m = on.metrics!.getSingleMetric(name);
  if (!m) return Number.NaN;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

const eventFromRow = (row: OutboxLine): RevocationEvent =>
  ({
    ...row.payload,
    id: row.event_id,
    type: row.type,
    at: row.occurred_at.getTime(),
    until: Math.ceil(row.relevant_until.getTime() / 1000),
  }) as RevocationEvent;

describe("outbox relay on Redis streams", () => {
  it("publishes Revoke's events before it answers, in outbox order, decoding to the same events", async () => {
    const a = await login(main.deps, "alice");
    const b = await login(main.deps, "bob");
    const bob2 = await login(main.deps, "bob");
    const c = await login(main.deps, "carol");
    const r1 = await revokeSession(main.deps, a.sessionId);
    const r2 = await revoked(
      revoke(main.deps, as(ops), create(RevokeRequestSchema, { target: { case: "subject", value: "bob" } })),
    );
    const r3 = await revokeSession(main.deps, c.sessionId, true);
    const r4 = await revoked(
      revoke(
        main.deps,
        as(web),
        create(RevokeRequestSchema, { target: { case: "accessToken", value: c.accessToken } }),
      ),
    );
    for (const r of [r1, r2, r3, r4]) expect(r.propagated).toBe(true);
    // Propagated means: in the stream when Revoke answered (rows are marked a moment later).
    const ids = [r1, r2, r3, r4].flatMap((r) => r.eventIds);
    const inStream = new Set((await streamEntries()).map((e) => e.event?.id));
    for (const id of ids) expect(inStream.has(id)).toBe(true);

    const rows = await until("rows marked published", async () => {
      const rs = await outbox();
      return rs.every((r) => r.published_at && r.stream_id) && rs;
    });
    expect(rows.map((r) => r.event_id)).toEqual(ids);
    expect(rows.map((r) => r.type)).toEqual([
      "session_revoked",
      "session_revoked",
      "session_revoked",
      "subject_revoked",
      "session_version",
      "token_revoked",
      "session_revoked",
    ]);
    const entries = await streamEntries();
    expect(entries.map((e) => e.id)).toEqual(rows.map((r) => r.stream_id));
    expect(entries.map((e) => e.event)).toEqual(rows.map(eventFromRow));
    expect(entries[5]!.event).toMatchObject({ type: "token_revoked", jti: decodeJwt(c.accessToken).jti });
    expect(entries[3]!.event).toMatchObject({ type: "subject_revoked", sub: "bob", notBefore: clock.now() });
    expect(new Set(entries.slice(1, 3).map((e) => (e.event as { sid: string }).sid))).toEqual(
      new Set([b.sessionId, bob2.sessionId]),
    );

    // Revoke's fast path published most; the background relay may have taken some first.
    expect(await metric("gatehouse_revocation_events_published_total")).toBe(7);
    expect(await metric("gatehouse_revocation_events_published_total", { path: "publish" })).toBeGreaterThan(
      0,
    );
    expect(await metric("gatehouse_revocation_outbox_backlog")).toBe(0);
    expect(await metric("gatehouse_revocation_relay_lag_seconds")).toBe(0);
  });

  it("commits with propagated: false while Redis is down, and the relay delivers once it is back", async () => {
    const s = await login(main.deps);
    await proxy.stop();
    try {
      const t0 = performance.now();
      const r = await revokeSession(main.deps, s.sessionId);
      expect(performance.now() - t0).toBeLessThan(400); // fails fast: no offline queue, no waiting out the timeout
      expect(r.sessionsRevoked).toBe(1);
      expect(r.propagated).toBe(false);
      const [row] = await outbox("event_id = $1", [r.eventIds[0]]);
      expect(row?.published_at).toBeNull();
      await new Promise((res) => setTimeout(res, 300)); // the background relay keeps failing meanwhile
      expect((await streamEntries()).some((e) => e.event?.id === r.eventIds[0])).toBe(false);
    } finally {
      await proxy.start();
    }
    const last = (await outbox()).at(-1)!;
    await until("the queued event in the stream", async () =>
      (await streamEntries()).some((e) => e.event?.id === last.event_id),
    );
    await until("its row marked", async () => (await outbox("id = $1", [last.id]))[0]?.stream_id);
  });

  it("rebuilds a lost stream from the outbox: every still-relevant event, nothing that stopped mattering", async () => {
    // An old row that stopped mattering an hour ago, published long since.
    await tdb.sql.query(
      `INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until, published_at, stream_id)
       VALUES ('token_revoked', '{"jti":"old-one"}', $1, $2, $1, '1-0')`,
      [new Date(clock.now() - 2 * TTL_MS), new Date(clock.now() - TTL_MS)],
    );
    const s = await login(main.deps);
    expect((await revokeSession(main.deps, s.sessionId)).propagated).toBe(true);
    await until("all published", async () => (await outbox("published_at IS NULL")).length === 0);
    const relevant = await outbox("relevant_until > $1", [new Date(clock.now())]);
    expect(relevant.length).toBeGreaterThan(0);

    await tredis.redis.del(stream); // Redis lost its data
    const rebuilt = await until("the stream rebuilt", async () => {
      const entries = await streamEntries();
      return entries.length >= relevant.length && entries;
    });
    expect(rebuilt.map((e) => e.event?.id)).toEqual(relevant.map((r) => r.event_id));
    expect(rebuilt.some((e) => (e.event as { jti?: string }).jti === "old-one")).toBe(false);
    await until("rows marked with their new stream ids", async () => {
      const marked = await outbox("relevant_until > $1", [new Date(clock.now())]);
      return marked.map((r) => r.stream_id).join() === rebuilt.map((e) => e.id).join();
    });
    // The pass counts the reset once it has returned, a moment after its transaction marked the rows.
    await until(
      "the reset counted",
      async () => (await metric("gatehouse_revocation_relay_resets_total")) === 1,
    );
    expect(await metric("gatehouse_revocation_relay_resets_total")).toBe(1);
    expect(await metric("gatehouse_revocation_events_published_total", { path: "republish" })).toBe(
      relevant.length,
    );

    // New revocations go on after the rebuilt window, in order.
    const t = await login(main.deps);
    const r = await revokeSession(main.deps, t.sessionId);
    expect(r.propagated).toBe(true);
    expect((await streamEntries()).at(-1)?.event?.id).toBe(r.eventIds[0]);
  });

  it("notices a stream that fell behind (failover to a stale replica) and republishes", async () => {
    const entries = await streamEntries();
    expect(entries.length).toBeGreaterThan(2);
    // The replica has only the first entry: rewrite the stream with it, under an older last id.
    const first = (await tredis.redis.xrange(stream, "-", "+", "COUNT", 1)) as [string, string[]][];
    await tredis.redis
      .multi()
      .del(stream)
      .xadd(stream, "1-1", ...first[0]![1])
      .exec();
    const relevant = await outbox("relevant_until > $1", [new Date(clock.now())]);
    const after = await until("the stream republished", async () => {
      const es = await streamEntries();
      return es.length >= relevant.length + 1 && es;
    });
    expect(after.slice(1).map((e) => e.event?.id)).toEqual(relevant.map((r) => r.event_id));
  });

  it("two relays at once lose nothing and keep outbox order", async () => {
    const second = await replica({ batchSize: 7, shareKeysWith: main, metrics: true });
    second.relay.start();
    // Concurrent revocations on both replicas, each publishing through its own relay.
    const worker = async (r: Replica, n: number) => {
      const results = [];
      for (let i = 0; i < n; i++) {
        const s = await login(r.deps);
        results.push(await revokeSession(r.deps, s.sessionId));
      }
      return results;
    };
    const results = (await Promise.all([worker(main, 20), worker(second, 20)])).flat();
    expect(results.every((r) => r.propagated)).toBe(true);
    const ids = results.flatMap((r) => r.eventIds);
    await until("every row published", async () => (await outbox("published_at IS NULL")).length === 0);
    const entries = await streamEntries();
    const counts = new Map<string, number>();
    for (const e of entries) counts.set(e.event!.id, (counts.get(e.event!.id) ?? 0) + 1);
    for (const id of ids) expect(counts.get(id)).toBe(1); // no loss; in normal operation no duplicate either

    // Outbox order across the two: 300 rows committed at once, both relays draining them in small batches.
    await tdb.sql.query(
      `INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until)
       SELECT 'token_revoked', jsonb_build_object('jti', 'bulk-' || g), $1, $2 FROM generate_series(1, 300) g`,
      [new Date(clock.now()), new Date(clock.now() + TTL_MS)],
    );
    await Promise.all([
      ...Array.from({ length: 8 }, () => main.relay.flush()),
      ...Array.from({ length: 8 }, () => second.relay.flush()),
    ]);
    await until("bulk rows published", async () => (await outbox("published_at IS NULL")).length === 0);
    const bulk = (await streamEntries())
      .map((e) => (e.event as { jti?: string } | null)?.jti)
      .filter((j): j is string => j?.startsWith("bulk-") ?? false);
    expect(bulk).toEqual(Array.from({ length: 300 }, (_, i) => `bulk-${i + 1}`));
    // Both really published: neither sat idle behind the other.
    expect(await metric("gatehouse_revocation_events_published_total", {}, second)).toBeGreaterThan(0);
  });

  it("prunes outbox rows and revoked jtis only once they stopped mattering (plus the grace)", async () => {
    const at = (ms: number) => new Date(clock.now() + ms);
    await tdb.sql.query(
      `INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until) VALUES
         ('token_revoked', '{"jti":"p-gone"}', $1, $2),
         ('token_revoked', '{"jti":"p-grace"}', $1, $3),
         ('token_revoked', '{"jti":"p-live"}', $1, $4)`,
      [at(-2 * TTL_MS), at(-10 * 60_000), at(-60_000), at(TTL_MS)],
    );
    await tdb.sql.query(
      `INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ('p-gone', $1), ('p-grace', $2), ('p-live', $3)`,
      [at(-10 * 60_000), at(-60_000), at(10 * 60_000)],
    );
    const before = (await outbox()).length;
    const pruned = await main.relay.prune();
    expect(pruned.revokedTokens).toBe(1);
    const left = await outbox();
    const jtis = left.map((r) => r.payload.jti);
    expect(jtis).not.toContain("p-gone");
    expect(jtis).not.toContain("old-one");
    expect(jtis).toEqual(expect.arrayContaining(["p-grace", "p-live"]));
    expect(pruned.outbox).toBe(before - left.length);
    expect(left.every((r) => r.relevant_until.getTime() >= clock.now() - 300_000)).toBe(true);
    const tokens = (
      await tdb.sql.query("SELECT jti FROM revoked_access_tokens WHERE jti LIKE 'p-%' ORDER BY jti")
    ).rows;
    expect(tokens.map((t) => t.jti)).toEqual(["p-grace", "p-live"]);
  });
});

describe("outbox relay on embedded PGlite and the in-process bus (gatehouse dev)", () => {
  it("publishes Revoke's events to a sidecar state following the same bus", async () => {
    const pglite = await openPGlite();
    await migrate({ kind: "pglite", db: pglite });
    const db = await createDatabase({ kind: "pglite", db: pglite });
    const bus = createInProcessBus();
    const relay = createOutboxRelay({
      db: pgliteOutboxDb(pglite),
      bus,
      stream: "gatehouse:revocations",
      maxAccessTokenTtlMs: TTL_MS,
      logger: log,
      now: clock.now,
      pruneIntervalMs: 0,
    });
    const state = createMemoryRevocationState();
    const follower = createStreamFollower({ bus, stream: "gatehouse:revocations", state, logger: log });
    const base = await flowDeps(db.prisma, pgliteExecutor(pglite), clock.now);
    try {
      relay.start();
      await follower.start();
      const deps = { ...base, publish: relay.publish };
      const client = (await createTestClient(db.prisma, { id: "web" })).client;
      const s = await issue(
        deps,
        { client, requestId: "r1" },
        create(IssueRequestSchema, { subject: "dana", audience: ["orders"], scopes: ["orders:read"] }),
      );
      const r = await revoke(
        deps,
        { client, requestId: "r2" },
        create(RevokeRequestSchema, { target: { case: "sessionId", value: s.sessionId! } }),
      );
      expect(r.propagated).toBe(true);
      await until("the sidecar state has it", async () => state.size === 1);
      const claims = decodeJwt(s.accessToken!);
      expect(
        state.check({
          jti: String(claims.jti),
          subject: "dana",
          clientId: "web",
          kid: "k",
          issuedAt: Number(claims.iat),
          sessionId: s.sessionId!,
        }),
      ).toBe("session_revoked");
    } finally {
      await follower.stop();
      await relay.stop();
      await bus.close();
      base.stop();
      await db.close();
      await pglite.close();
    }
  });
});
