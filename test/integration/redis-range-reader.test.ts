import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createRedisBus,
  encodeRevocationEntry,
  type RevocationEvent,
} from "../../services/shared/revocation/index.ts";
import { createRangeReader, type RangeReader } from "../../services/shared/revocation/redis-range-reader.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import { createStreamFollower } from "../../services/sidecar/revocation-stream/index.ts";
import { freePort } from "../support/ports.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

/**
 * The bus's own XRANGE reader (the sidecar bootstrap reads every entry through it) against real
 * Redis: it must return exactly what ioredis returns, for every shape of entry and however the
 * reply is cut into TCP chunks, and fail cleanly when Redis errs, goes away or goes silent.
 */

/** The Redis commands a sidecar's user needs (docs/operations.md, "Redis connections and permissions"). */
const SIDECAR_ACL = ["+xinfo|stream", "+xread", "+xrange"];
const quietLogger = { info() {}, warn() {} };

let tredis: TestRedis;
const readers: RangeReader[] = [];
const reader = (port: number, extra: { commandTimeoutMs?: number; name?: string } = {}) => {
  const r = createRangeReader({
    connection: { host: "127.0.0.1", port },
    name: extra.name ?? "gatehouse-test:range",
    connectTimeoutMs: 1000,
    commandTimeoutMs: extra.commandTimeoutMs ?? 5000,
  });
  readers.push(r);
  return r;
};
const redisPort = () => Number(new URL(tredis.url).port || 6379);

/** Every entry after `afterId` in pages of `count`, through `range`. */
async function readAll(
  range: (afterId: string) => Promise<{ id: string; fields: readonly string[] }[]>,
  count: number,
) {
  const out: { id: string; fields: readonly string[] }[] = [];
  let after = "0-0";
  for (;;) {
    const page = await range(after);
    out.push(...page);
    if (page.length < count) return out;
    after = page.at(-1)!.id;
  }
}

const viaIoredis = async (key: string, after: string, count: number) =>
  ((await tredis.redis.xrange(key, `(${after}`, "+", "COUNT", count)) as [string, string[]][]).map(
    ([id, fields]) => ({ id, fields }),
  );

beforeAll(async () => {
  tredis = await useTestRedis("range");
});

afterAll(async () => {
  for (const r of readers) r.close();
  await tredis.cleanup();
});

describe("redis range reader", () => {
  it("reads every entry shape exactly as ioredis's XRANGE does, in any page size", async () => {
    const key = `${tredis.prefix}shapes`;
    const shapes: string[][] = [
      ["e", JSON.stringify({ id: "a", type: "token_revoked", jti: "x" })],
      ["a", "1", "b", "2", "c", ""],
      ["e", "ünïcødé ✓ 🚀 — ☃"],
      ["naïve field", "value with\r\nCRLF and $5\r\n*2\r\n inside"],
      ["big", "x".repeat(1_000_000)],
      ["e", "-ERR not an error, a value"],
      ["e", "+OK"],
    ];
    for (let i = 0; i < 300; i++) shapes.push(["e", `{"n":${i},"pad":"${"p".repeat(i * 7)}"}`]);
    for (const fields of shapes) await tredis.redis.xadd(key, "*", ...fields);

    const r = reader(redisPort());
    const expected = await readAll((after) => viaIoredis(key, after, 1000), 1000);
    expect(expected).toHaveLength(shapes.length);
    for (const count of [1, 2, 7, 100, 1000]) {
      const got = await readAll((after) => r.range(key, after, count), count);
      expect(got, `pages of ${count}`).toEqual(expected);
    }
  });

  it("reads the same entries when Redis's replies arrive a few bytes at a time, cut anywhere", async () => {
    const key = `${tredis.prefix}trickle`;
    const shapes: string[][] = [
      ["e", '{"id":"a"}'],
      ["a", "", "bb", "ünï ✓ 🚀"],
      ["e", "x".repeat(300)],
      ["multi", "line\r\n$3\r\n*1\r\n"],
    ];
    for (let i = 0; i < 40; i++) for (const fields of shapes) await tredis.redis.xadd(key, "*", ...fields);
    const expected = await viaIoredis(key, "0-0", 1000);

    const trickle = await startTrickleProxy(redisPort());
    try {
      const r = reader(trickle.port);
      // Two ranges in flight, so one reply's tail and the next one's head share a read.
      const [all, some] = await Promise.all([r.range(key, "0-0", 1000), r.range(key, expected[9]!.id, 25)]);
      expect(all).toEqual(expected);
      expect(some).toEqual(expected.slice(10, 35));
      expect(trickle.chunks()).toBeGreaterThan(2000);
    } finally {
      await trickle.close();
    }
  });

  it("answers [] for a missing stream or past its end, and a Redis error without losing the connection", async () => {
    const key = `${tredis.prefix}errs`;
    const id = await tredis.redis.xadd(key, "*", "e", "{}");
    const wrong = `${tredis.prefix}a-string`;
    await tredis.redis.set(wrong, "not a stream");

    const r = reader(redisPort(), { name: "gatehouse-test:errors-range" });
    expect(await r.range(`${tredis.prefix}missing`, "0-0", 10)).toEqual([]);
    expect(await r.range(key, id!, 10)).toEqual([]);
    await expect(r.range(wrong, "0-0", 10)).rejects.toThrow(/WRONGTYPE/);
    await expect(r.range(key, "not-an-id", 10)).rejects.toThrow(/ERR/);
    expect(await r.range(key, "0-0", 10)).toEqual([{ id, fields: ["e", "{}"] }]);
    expect(await connectionsNamed("gatehouse-test:errors-range")).toBe(1);
  });

  it("pipelines: ranges asked for at once each get their own reply, in order", async () => {
    const key = `${tredis.prefix}pipeline`;
    const p = tredis.redis.pipeline();
    for (let i = 0; i < 5000; i++) p.xadd(key, "*", "e", `{"i":${i}}`);
    await p.exec();
    const all = await viaIoredis(key, "0-0", 5000);

    const r = reader(redisPort());
    const starts = [0, 1, 999, 2500, 4998, 4999, 0, 17];
    const pages = await Promise.all(starts.map((i) => r.range(key, i === 0 ? "0-0" : all[i - 1]!.id, 1500)));
    pages.forEach((page, n) => {
      const from = starts[n]!;
      expect(page, `range after entry ${from}`).toEqual(all.slice(from, from + 1500));
    });
  });

  it("reads through the bus with a key prefix and a database other than 0, as ioredis would", async () => {
    const db = 7;
    const prefix = `${tredis.prefix}bus:`;
    const writer = new Redis(tredis.url, { db });
    try {
      await writer.xadd(`${prefix}s`, "*", "e", '{"db":7}');
      const bus = createRedisBus({ url: tredis.url, redis: { db, keyPrefix: prefix } });
      try {
        const got = await bus.range("s", "0-0", 10);
        expect(got.map((e) => e.fields)).toEqual([["e", '{"db":7}']]);
        expect(await tredis.redis.exists(`${prefix}s`)).toBe(0);
      } finally {
        await bus.close();
      }
      await expect(bus.range("s", "0-0", 10)).rejects.toThrow(/closed/);
    } finally {
      await writer.del(`${prefix}s`);
      writer.disconnect();
    }
  });

  describe("when the connection fails", () => {
    let proxy: TcpProxy;
    const key = () => `${tredis.prefix}cut`;
    beforeAll(async () => {
      proxy = await startTcpProxy({ port: redisPort() });
      const p = tredis.redis.pipeline();
      for (let i = 0; i < 20_000; i++) p.xadd(key(), "*", "e", `{"i":${i},"pad":"${"p".repeat(100)}"}`);
      await p.exec();
    });
    afterEach(() => proxy.resume());
    afterAll(async () => {
      await proxy.stop();
    });

    it("rejects every pending range when the connection is cut mid-reply, and reconnects for the next", async () => {
      const r = reader(proxy.port);
      await r.range(key(), "0-0", 1); // connected and handshaken
      proxy.pause();
      const pending = [r.range(key(), "0-0", 20_000), r.range(key(), "0-0", 5)];
      await new Promise((res) => setTimeout(res, 50));
      await proxy.stop();
      for (const p of pending) await expect(p).rejects.toThrow(/redis range connection/);
      await proxy.start();
      proxy.resume();
      const page = await r.range(key(), "0-0", 20_000);
      expect(page).toHaveLength(20_000);
      expect(page).toEqual(await viaIoredis(key(), "0-0", 20_000));
    });

    it("rejects when the server goes silent for longer than the command timeout, then recovers", async () => {
      const r = reader(proxy.port, { commandTimeoutMs: 300 });
      await r.range(key(), "0-0", 1);
      proxy.pause();
      const t0 = performance.now();
      await expect(r.range(key(), "0-0", 10)).rejects.toThrow(/no answer within 300 ms/);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
      proxy.resume();
      expect(await r.range(key(), "0-0", 10)).toHaveLength(10);
    });

    it("rejects at once when nothing listens", async () => {
      const r = reader(await freePort());
      await expect(r.range(key(), "0-0", 10)).rejects.toThrow(/ECONNREFUSED/);
    });
  });

  it("closes its connection once idle for the command timeout (bootstraps are rare)", async () => {
    const name = "gatehouse-test:idle-range";
    const r = reader(redisPort(), { commandTimeoutMs: 300, name });
    await r.range(`${tredis.prefix}idle`, "0-0", 1);
    expect(await connectionsNamed(name)).toBe(1);
    await new Promise((res) => setTimeout(res, 700));
    expect(await connectionsNamed(name)).toBe(0);
    expect(await r.range(`${tredis.prefix}idle`, "0-0", 1)).toEqual([]);
  });

  describe("against a Redis with a password, ACL users, TLS and a unix socket", () => {
    let dir: string;
    let server: ChildProcess;
    let port: number;
    let tlsPort: number;
    let socketPath: string;
    let ca: Buffer;
    const url = (auth: string, scheme = "redis", p = port) => `${scheme}://${auth}@127.0.0.1:${p}`;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "gatehouse-range-redis-"));
      execFileSync(
        "openssl",
        [
          "req",
          ...["-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
          ...["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
          ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
        ],
        { stdio: "ignore" },
      );
      ca = readFileSync(join(dir, "cert.pem"));
      [port, tlsPort] = [await freePort(), await freePort()];
      socketPath = join(dir, "redis.sock");
      server = spawn(
        "redis-server",
        [
          ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
          ...["--requirepass", "s3cret", "--unixsocket", socketPath, "--unixsocketperm", "700"],
          ...["--tls-port", String(tlsPort), "--tls-auth-clients", "no"],
          ...["--tls-cert-file", join(dir, "cert.pem"), "--tls-key-file", join(dir, "key.pem")],
          ...["--tls-ca-cert-file", join(dir, "cert.pem"), "--dir", dir],
        ],
        { stdio: "ignore" },
      );
      const admin = new Redis(url(":s3cret"), { retryStrategy: (n) => (n > 50 ? null : 100) });
      admin.on("error", () => {}); // refused until redis-server listens
      await admin.xadd("s", "*", "e", '{"private":true}');
      await admin.acl("SETUSER", "reader", "on", ">r3ad", "~*", "+xrange");
      admin.disconnect();
    });

    afterAll(async () => {
      server?.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    });

    const expectPrivateEntry = async (bus: ReturnType<typeof createRedisBus>) => {
      try {
        expect((await bus.range("s", "0-0", 10)).map((e) => e.fields)).toEqual([["e", '{"private":true}']]);
      } finally {
        await bus.close();
      }
    };

    it("authenticates with the URL's password, or its ACL user and password (a user allowed only XRANGE)", async () => {
      await expectPrivateEntry(createRedisBus({ url: url(":s3cret") }));
      await expectPrivateEntry(createRedisBus({ url: url("reader:r3ad") }));
    });

    it("fails with Redis's own reason when the password is wrong, for every pending range", async () => {
      const bus = createRedisBus({ url: url(":wrong") });
      try {
        const pending = [bus.range("s", "0-0", 10), bus.range("s", "0-0", 10)];
        for (const p of pending) await expect(p).rejects.toThrow(/redis refused AUTH: WRONGPASS/);
      } finally {
        await bus.close();
      }
    });

    it("speaks TLS for rediss:// with the ioredis tls options", async () => {
      await expectPrivateEntry(
        createRedisBus({ url: url(":s3cret", "rediss", tlsPort), redis: { tls: { ca } } }),
      );
      // Through the bus: its ioredis connections are refused too, and (GuardedConnector) the
      // second TLS error of a refused handshake does not end the process.
      const untrusted = createRedisBus({ url: url(":s3cret", "rediss", tlsPort), redis: { tls: {} } });
      try {
        await expect(untrusted.range("s", "0-0", 10)).rejects.toThrow(/self-signed certificate/);
        await expect(untrusted.info("s")).rejects.toThrow();
        await new Promise((r) => setTimeout(r, 300)); // a few reconnect attempts
      } finally {
        await untrusted.close();
      }
    });

    it("connects over a unix socket path", async () => {
      await expectPrivateEntry(createRedisBus({ url: url(":s3cret"), redis: { path: socketPath } }));
    });

    it("bootstraps and follows a stream as an ACL user with only the commands docs/operations.md lists", async () => {
      const admin = new Redis(url(":s3cret"));
      await admin.acl("SETUSER", "sidecar", "on", ">s1decar", "~s", ...SIDECAR_ACL);
      const bus = createRedisBus({ url: url("sidecar:s1decar"), readGraceMs: 500 });
      const state = createMemoryRevocationState();
      const follower = createStreamFollower({ bus, stream: "s", state, logger: quietLogger, blockMs: 200 });
      try {
        await follower.start(); // bootstrap: XINFO, then XRANGE on the range connection
        // It read the entry written in beforeAll (not a revocation, so skipped).
        expect(follower.lastId).toBe(((await admin.xrange("s", "-", "+")) as [string, string[]][])[0]![0]);
        expect(state.size).toBe(0);
        const token = { jti: "jti-after-bootstrap", subject: "s", clientId: "c", kid: "k", issuedAt: 1 };
        expect(state.check(token)).toBeNull();
        const at = Date.now();
        const revoked: RevocationEvent = { id: "e1", type: "token_revoked", at, until: 4e9, jti: token.jti };
        await admin.xadd("s", "*", ...encodeRevocationEntry(revoked)); // followed by XREAD
        const deadline = Date.now() + 5000;
        while (state.check(token) === null && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 20));
        expect(state.check(token)).toBe("token_revoked");
        // The user cannot write to the stream.
        const asSidecar = new Redis(url("sidecar:s1decar"));
        try {
          await expect(asSidecar.xadd("s", "*", "e", "{}")).rejects.toThrow(/NOPERM/);
        } finally {
          asSidecar.disconnect();
        }
      } finally {
        await follower.stop();
        await bus.close();
        admin.disconnect();
      }
    });
  });
});

/** How many client connections the shared Redis lists under `name`. */
async function connectionsNamed(name: string): Promise<number> {
  const list = (await tredis.redis.client("LIST")) as string;
  return list.split("\n").filter((line) => line.includes(` name=${name} `)).length;
}

/**
 * A proxy in front of Redis that forwards its replies in slices of 1 to 7 bytes, each written on its
 * own turn of the event loop with Nagle off, so the reader sees a reply cut at every kind of place:
 * inside a length, between `\r` and `\n`, inside a multi-byte character.
 */
async function startTrickleProxy(redisPortNumber: number) {
  let chunks = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: "127.0.0.1", port: redisPortNumber });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.setNoDelay(true);
    client.pipe(upstream);
    let pending = Buffer.alloc(0);
    let writing = false;
    upstream.on("data", async (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      if (writing) return;
      writing = true;
      while (pending.length > 0 && !client.destroyed) {
        const n = 1 + (chunks % 7);
        client.write(pending.subarray(0, n));
        pending = pending.subarray(n);
        chunks++;
        await new Promise((r) => setImmediate(r));
      }
      writing = false;
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    chunks: () => chunks,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
