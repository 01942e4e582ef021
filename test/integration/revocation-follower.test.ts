import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createMetricsRegistry, type Registry } from "../../services/shared/metrics/index.ts";
import { createInProcessBus, type InProcessBus } from "../../services/shared/revocation/in-process-bus.ts";
import { createRedisBus } from "../../services/shared/revocation/redis-bus.ts";
import type { RevocationBus } from "../../services/shared/revocation/revocation-bus.ts";
import { encodeRevocationEntry } from "../../services/shared/revocation/revocation-entry.ts";
import type { RevocationEvent } from "../../services/shared/revocation/revocation-events.ts";
import { compareStreamIds } from "../../services/shared/revocation/stream-id.ts";
import {
  createMemoryRevocationState,
  type MemoryRevocationState,
} from "../../services/sidecar/revocation-state/index.ts";
import { createStreamFollower, type StreamFollower } from "../../services/sidecar/revocation-stream/index.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

/**
 * The follower's contract, run against both buses: Redis streams (behind a TCP proxy the test can
 * stop) and the in-process bus (behind a switch that fails every call). A writer appends directly,
 * so it keeps working while the followers' side is "down".
 */
interface BusHarness {
  /** A fresh bus for one follower, on the side that can go down. */
  followerBus(): RevocationBus;
  /** Appends straight to the stream (never down). */
  writer: RevocationBus;
  /** The stream is lost (Redis restarted empty, FLUSHALL). */
  dropStream(stream: string): Promise<void>;
  /** The stream is replaced, in one step, by one whose last id is far behind (failover to a stale replica). */
  replaceBehind(stream: string, events: RevocationEvent[]): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

const quiet = { info() {}, warn() {} };
let tredis: TestRedis;
beforeAll(async () => {
  tredis = await useTestRedis("rv-follow");
});
afterAll(() => tredis?.cleanup());

async function redisHarness(): Promise<BusHarness> {
  const proxy: TcpProxy = await startTcpProxy({ port: Number(new URL(tredis.url).port || 6379) });
  const buses: RevocationBus[] = [];
  const writer = createRedisBus({ url: tredis.url });
  return {
    followerBus() {
      const bus = createRedisBus({ url: proxy.url, reconnect: { minMs: 20, maxMs: 200 }, readGraceMs: 500 });
      buses.push(bus);
      return bus;
    },
    writer,
    async dropStream(stream) {
      await tredis.redis.del(stream);
    },
    async replaceBehind(stream, events) {
      const m = tredis.redis.multi().del(stream);
      events.forEach((e, i) => {
        m.xadd(stream, `1-${i + 1}`, ...encodeRevocationEntry(e));
      });
      await m.exec();
    },
    down: () => proxy.stop(),
    up: () => proxy.start(),
    async close() {
      for (const b of buses) await b.close();
      await writer.close();
      await proxy.stop();
    },
  };
}

async function inProcessHarness(): Promise<BusHarness> {
  let skewMs = 0;
  const bus: InProcessBus = createInProcessBus({ now: () => Date.now() - skewMs });
  let isDown = false;
  const cut = new Set<() => void>();
  const refuse = () => Promise.reject(new Error("bus unreachable"));
  /** The follower's view of the bus: every call fails while "down", and going down breaks reads in flight. */
  const view: RevocationBus = {
    append: (...a) => (isDown ? refuse() : bus.append(...a)),
    range: (...a) => (isDown ? refuse() : bus.range(...a)),
    info: (...a) => (isDown ? refuse() : bus.info(...a)),
    trim: (...a) => (isDown ? refuse() : bus.trim(...a)),
    read(stream, afterId, options) {
      if (isDown) return refuse();
      const broken = new AbortController();
      const onCut = () => broken.abort();
      cut.add(onCut);
      const signal = options.signal ? AbortSignal.any([options.signal, broken.signal]) : broken.signal;
      return bus.read(stream, afterId, { ...options, signal }).finally(() => cut.delete(onCut));
    },
    close: async () => {},
  };
  return {
    followerBus: () => view,
    writer: bus,
    async dropStream(stream) {
      bus.delete(stream);
    },
    async replaceBehind(stream, events) {
      bus.delete(stream);
      skewMs = 86_400_000; // the new stream's clock is a day behind
      await bus.append(stream, events.map(encodeRevocationEntry));
      skewMs = 0;
    },
    async down() {
      isDown = true;
      for (const c of [...cut]) c();
    },
    async up() {
      isDown = false;
    },
    close: () => bus.close(),
  };
}

let counter = 0;
const nowS = () => Math.floor(Date.now() / 1000);
function tokenEvent(jti = `jti-${++counter}-${randomUUID()}`): RevocationEvent & { jti: string } {
  return { id: randomUUID(), type: "token_revoked", at: Date.now(), until: nowS() + 3600, jti };
}
const token = (jti: string, extra: { sid?: string; sv?: number; sub?: string; iat?: number } = {}) => ({
  jti,
  subject: extra.sub ?? "someone",
  clientId: "web",
  kid: "k1",
  issuedAt: extra.iat ?? nowS() - 10,
  sessionId: extra.sid,
  sessionVersion: extra.sv,
});

/** Milliseconds until `fn` holds, polled by vi.waitFor. */
async function until(what: string, fn: () => boolean | Promise<boolean>, timeout = 5000): Promise<number> {
  const t0 = performance.now();
  await vi.waitFor(async () => (await fn()) || Promise.reject(new Error(`timed out waiting for ${what}`)), {
    timeout,
    interval: 5,
  });
  return performance.now() - t0;
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  return m ? (await m.get()).values.reduce((s, v) => s + v.value, 0) : Number.NaN;
}

describe.each([
  ["Redis streams", redisHarness],
  ["the in-process bus", inProcessHarness],
])("stream follower on %s", (_name, makeHarness) => {
  let h: BusHarness;
  const followers: StreamFollower[] = [];
  let seq = 0;
  const newStream = () => `${tredis.prefix}stream-${++seq}-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    h = await makeHarness();
  });
  afterEach(async () => {
    for (const f of followers.splice(0)) await f.stop();
  });
  afterAll(() => h?.close());

  function follow(
    stream: string,
    opts: { pageSize?: number; blockMs?: number; state?: MemoryRevocationState; metrics?: Registry } = {},
  ) {
    const state = opts.state ?? createMemoryRevocationState();
    const applied: { event: RevocationEvent; live: boolean; at: number }[] = [];
    const follower = createStreamFollower({
      bus: h.followerBus(),
      stream,
      state,
      logger: quiet,
      metrics: opts.metrics,
      pageSize: opts.pageSize ?? 100,
      blockMs: opts.blockMs ?? 200,
      retryMinMs: 20,
      retryMaxMs: 200,
      onApplied: (event, live) => applied.push({ event, live, at: performance.now() }),
    });
    followers.push(follower);
    return { follower, state, applied };
  }

  it("learns every event at bootstrap, reading the stream in pages, and skips entries it cannot read", async () => {
    const stream = newStream();
    const tokens = Array.from({ length: 23 }, () => tokenEvent());
    const others: RevocationEvent[] = [
      { id: randomUUID(), type: "session_revoked", at: Date.now(), until: nowS() + 3600, sid: "s-1" },
      {
        id: randomUUID(),
        type: "session_version",
        at: Date.now(),
        until: nowS() + 3600,
        sid: "s-2",
        minVersion: 3,
      },
      {
        id: randomUUID(),
        type: "subject_revoked",
        at: Date.now(),
        until: nowS() + 3600,
        sub: "eve",
        notBefore: Date.now(),
      },
      {
        id: randomUUID(),
        type: "client_disabled",
        at: Date.now(),
        until: nowS() + 3600,
        clientId: "bad",
        notBefore: Date.now(),
      },
      { id: randomUUID(), type: "key_revoked", at: Date.now(), until: nowS() + 3600, kid: "k-stolen" },
    ];
    await h.writer.append(stream, [...tokens.slice(0, 10), ...others].map(encodeRevocationEntry));
    await h.writer.append(stream, [
      ["x", "not ours"],
      ["e", "{not json"],
      ["e", JSON.stringify({ id: "x", type: "future_kind", at: 1, until: 2 })],
      ["e", JSON.stringify({ id: "y", type: "token_revoked", at: 1, until: 2 })], // no jti
    ]);
    const ids = await h.writer.append(stream, tokens.slice(10).map(encodeRevocationEntry));

    const registry = createMetricsRegistry("sidecar", { defaultMetrics: false });
    const { follower, state, applied } = follow(stream, { pageSize: 4, metrics: registry });
    expect(follower.ready()).toBe(false);
    await follower.start();
    expect(follower.ready()).toBe(true);
    expect(follower.lastId).toBe(ids!.at(-1));
    expect(state.size).toBe(28);
    expect(applied.every((a) => !a.live)).toBe(true);
    for (const t of tokens) expect(state.check(token(t.jti))).toBe("token_revoked");
    expect(state.check(token("unrelated"))).toBeNull();
    expect(state.check(token("a", { sid: "s-1" }))).toBe("session_revoked");
    expect(state.check(token("b", { sid: "s-2", sv: 2 }))).toBe("session_revoked");
    expect(state.check(token("c", { sid: "s-2", sv: 3 }))).toBeNull();
    expect(state.check(token("d", { sub: "eve" }))).toBe("subject_revoked");
    expect(state.check({ ...token("e"), clientId: "bad" })).toBe("client_disabled");
    expect(state.check({ ...token("f"), kid: "k-stolen" })).toBe("key_revoked");
    expect(state.isStale(Date.now())).toBe(false);
    expect(await metric(registry, "gatehouse_revocation_entries_skipped_total")).toBe(4);
    expect(await metric(registry, "gatehouse_revocation_events_applied_total")).toBe(28);
    expect(await metric(registry, "gatehouse_revocation_state_entries")).toBe(28);
  });

  it("applies new events within milliseconds of their append", async () => {
    const stream = newStream();
    const { follower, state, applied } = follow(stream, { blockMs: 2000 });
    await follower.start();
    const lags: number[] = [];
    for (let i = 0; i < 20; i++) {
      const e = tokenEvent();
      const t0 = performance.now();
      await h.writer.append(stream, [encodeRevocationEntry(e)]);
      await until("the event applied", () => applied.some((a) => a.event.id === e.id), 2000);
      lags.push(applied.find((a) => a.event.id === e.id)!.at - t0);
      expect(state.check(token(e.jti))).toBe("token_revoked");
    }
    lags.sort((a, b) => a - b);
    expect(lags[10]).toBeLessThan(50); // median; loopback, two cores shared with other test files
    expect(applied.every((a) => a.live)).toBe(true);
  });

  it("re-bootstraps a lost stream without dropping what it knew, and gains what is published after", async () => {
    const stream = newStream();
    const registry = createMetricsRegistry("sidecar", { defaultMetrics: false });
    const old = Array.from({ length: 5 }, () => tokenEvent());
    await h.writer.append(stream, old.map(encodeRevocationEntry));
    const { follower, state } = follow(stream, { metrics: registry });
    await follower.start();
    expect(state.size).toBe(5);

    await h.dropStream(stream);
    // Within a read timeout the follower sees the stream gone and starts over from its beginning.
    await until("the loss noticed", () => follower.lastId === "0-0", 3000);
    const fresh = Array.from({ length: 3 }, () => tokenEvent());
    await h.writer.append(stream, fresh.map(encodeRevocationEntry));
    await until("the new events applied", () => state.size === 8, 3000);
    for (const e of [...old, ...fresh]) expect(state.check(token(e.jti))).toBe("token_revoked");
    expect(await metric(registry, "gatehouse_revocation_follower_resets_total")).toBe(1);
  });

  it("re-bootstraps a stream whose ids went backwards, keeping old entries and gaining the replaced ones", async () => {
    const stream = newStream();
    const old = Array.from({ length: 4 }, () => tokenEvent());
    await h.writer.append(stream, old.map(encodeRevocationEntry));
    const { follower, state } = follow(stream);
    await follower.start();
    const before = follower.lastId;

    const republished = [old[0]!, ...Array.from({ length: 2 }, () => tokenEvent())];
    await h.replaceBehind(stream, republished);
    await until("the replaced stream bootstrapped", () => state.size === 6, 3000);
    expect(compareStreamIds(follower.lastId, before)).toBeLessThan(0);
    for (const e of [...old, ...republished]) expect(state.check(token(e.jti))).toBe("token_revoked");
    // And it follows the replaced stream from there.
    const next = tokenEvent();
    await h.writer.append(stream, [encodeRevocationEntry(next)]);
    await until("following again", () => state.check(token(next.jti)) === "token_revoked", 3000);
  });

  it("goes stale when the bus is unreachable for longer than the bound, and fresh once it is back", async () => {
    const stream = newStream();
    const state = createMemoryRevocationState({ stalenessBoundMs: 600 });
    const { follower } = follow(stream, { state, blockMs: 150 });
    await follower.start();
    const bootstrapped = tokenEvent();
    await h.writer.append(stream, [encodeRevocationEntry(bootstrapped)]);
    await until("following", () => state.size === 1);
    await new Promise((r) => setTimeout(r, 700));
    expect(state.isStale(Date.now())).toBe(false); // empty reads keep confirming it

    await h.down();
    const missed = tokenEvent();
    try {
      const wentStale = await until("stale", () => state.isStale(Date.now()), 5000);
      expect(wentStale).toBeGreaterThan(300); // not before the bound (less the read in flight)
      await h.writer.append(stream, [encodeRevocationEntry(missed)]);
      await new Promise((r) => setTimeout(r, 300));
      expect(state.isStale(Date.now())).toBe(true);
      expect(state.check(token(missed.jti))).toBeNull();
    } finally {
      await h.up();
    }
    await until("fresh again", () => !state.isStale(Date.now()), 5000);
    await until("the missed event applied", () => state.check(token(missed.jti)) === "token_revoked", 3000);
    expect(state.check(token(bootstrapped.jti))).toBe("token_revoked");
  });
});

describe("stream follower on Redis behind a connection that goes silent", () => {
  it("takes a read that never answers for a dead connection, reconnects, and recovers when traffic flows", async () => {
    const proxy = await startTcpProxy({ port: Number(new URL(tredis.url).port || 6379) });
    const bus = createRedisBus({ url: proxy.url, reconnect: { minMs: 20, maxMs: 200 }, readGraceMs: 300 });
    const writer = createRedisBus({ url: tredis.url });
    const stream = `${tredis.prefix}silent`;
    const state = createMemoryRevocationState({ stalenessBoundMs: 500 });
    const follower = createStreamFollower({
      bus,
      stream,
      state,
      logger: quiet,
      blockMs: 150,
      retryMinMs: 20,
      retryMaxMs: 200,
    });
    try {
      await follower.start();
      const before = proxy.connections;
      proxy.pause(); // half-open: sockets stay up, nothing gets through, no error is ever seen
      await until("stale", () => state.isStale(Date.now()), 5000);
      // The read watchdog dropped the silent reader and dialled again.
      await until("a new connection", () => proxy.connections > before, 5000);
      const missed = tokenEvent();
      await writer.append(stream, [encodeRevocationEntry(missed)]);
      proxy.resume();
      await until("fresh again", () => !state.isStale(Date.now()), 5000);
      await until("the missed event applied", () => state.check(token(missed.jti)) === "token_revoked", 3000);
    } finally {
      await follower.stop();
      await bus.close();
      await writer.close();
      await proxy.stop();
    }
  });
});
