import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSidecar, startSidecar } from "../../services/sidecar/sidecar.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import {
  removePolicies,
  silentLogger,
  startTestTokenService,
  type TestTokenService,
  testSidecarSettings,
  writePolicy,
} from "../support/sidecar-fixtures.ts";

/** Issue 14 item 6: resource limits, each a setting (small values here so the tests stay fast). */

const app = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => res.end("ok"));
});
let sidecar: RunningSidecar;
const POLICY = `
default: { audiences: [orders] }
rules:
  - match: { prefix: /public }
    public: true
  - match: { prefix: /orders }
    scopes: { allOf: [orders:read] }
`;
let tdb: TestDatabase;
let ts: TestTokenService;
let token: string;

/** An app that holds every request for `holdMs`, counting requests and connections open at once. */
interface SlowApp {
  port: number;
  requests: { open: number; max: number; done: number };
  connections: { open: number; max: number };
  close(): void;
}

async function startSlowApp(holdMs: number): Promise<SlowApp> {
  const requests = { open: 0, max: 0, done: 0 };
  const connections = { open: 0, max: 0 };
  const server = http.createServer((req, res) => {
    requests.open++;
    requests.max = Math.max(requests.max, requests.open);
    req.resume();
    setTimeout(() => {
      requests.open--;
      requests.done++;
      res.end("ok");
    }, holdMs);
  });
  server.on("connection", (socket: net.Socket) => {
    connections.open++;
    connections.max = Math.max(connections.max, connections.open);
    socket.once("close", () => connections.open--);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    connections,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

const extra: RunningSidecar[] = [];

/** A sidecar in front of `appPort` with these limits; stopped in afterAll. */
async function limitedSidecar(appPort: number, env: Record<string, string>): Promise<RunningSidecar> {
  const s = await startSidecar({
    settings: testSidecarSettings({
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_UPSTREAM: `http://127.0.0.1:${appPort}`,
      GATEHOUSE_POLICY_FILE: writePolicy(POLICY),
      GATEHOUSE_REVOCATION: "none",
      ...env,
    }),
    logger: silentLogger(),
  });
  extra.push(s);
  await s.ready();
  return s;
}

function appPort(): number {
  return (app.address() as AddressInfo).port;
}

/** Opens a raw TCP connection; `closed` resolves with ms from open to close, `data` collects what came. */
async function rawConnection(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const opened = Date.now();
  let data = "";
  socket.on("data", (d) => {
    data += d.toString("latin1");
  });
  socket.on("error", () => {});
  const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now() - opened)));
  return { socket, closed, data: () => data };
}

const GET = "GET /public/x HTTP/1.1\r\nhost: a\r\n\r\n";

/** Sends one HTTP/1.1 GET on a raw keep-alive connection and waits for the whole (small) answer. */
async function getOn(conn: Awaited<ReturnType<typeof rawConnection>>): Promise<string> {
  const before = conn.data().length;
  conn.socket.write(GET);
  await expect.poll(() => /\r\n\r\nok$/.test(conn.data().slice(before)), { timeout: 1500 }).toBeTruthy();
  return conn.data().slice(before);
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  ts = await startTestTokenService(tdb);
  token = (await ts.issue("alice", ["orders:read"])).token;
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", () => r()));
  sidecar = await startSidecar({
    settings: testSidecarSettings({
      GATEHOUSE_TOKEN_SERVICE_URL: "http://127.0.0.1:9",
      GATEHOUSE_UPSTREAM: `http://127.0.0.1:${appPort()}`,
      GATEHOUSE_POLICY_FILE: writePolicy(POLICY),
      GATEHOUSE_REVOCATION: "none",
      GATEHOUSE_BODY_IDLE_TIMEOUT: "300ms",
    }),
    logger: silentLogger(),
  });
});
afterAll(async () => {
  await Promise.all([sidecar, ...extra].map((s) => s?.shutdown(50)));
  app.closeAllConnections();
  app.close();
  await ts?.service.shutdown();
  await tdb?.drop();
  removePolicies();
});

describe("proxy limits", () => {
  it("advertises SETTINGS_MAX_CONCURRENT_STREAMS 100 to HTTP/2 callers by default", async () => {
    const session = http2.connect(`http://127.0.0.1:${sidecar.proxyPort}`);
    try {
      await new Promise((r) => session.once("remoteSettings", r));
      expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
    } finally {
      session.destroy();
    }
  });

  it("cuts a request body that stops arriving with 408 request_timeout", async () => {
    const started = Date.now();
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: sidecar.proxyPort, path: "/public/upload", method: "POST", agent: false },
        (res) => {
          let body = "";
          res.on("data", (d) => {
            body += d;
          });
          res.on("end", () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on("error", reject);
      req.setHeader("transfer-encoding", "chunked");
      req.write("x"); // one byte, then nothing
    });
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ error: "request_timeout" });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("cuts an HTTP/2 request body that stops arriving with 408 request_timeout, then ends the stream", async () => {
    const session = http2.connect(`http://127.0.0.1:${sidecar.proxyPort}`);
    session.on("error", () => {});
    try {
      const started = Date.now();
      const stream = session.request({ ":method": "POST", ":path": "/public/upload" }, { endStream: false });
      stream.on("error", () => {});
      stream.write("x"); // one byte, then nothing
      const status = await Promise.race([
        new Promise<number>((r) => stream.once("response", (h) => r(Number(h[":status"])))),
        new Promise<number>((r) => setTimeout(() => r(-1), 1500)),
      ]);
      expect(status).toBe(408);
      let body = "";
      stream.on("data", (d) => {
        body += d;
      });
      await new Promise((r) => stream.once("close", r));
      expect(JSON.parse(body)).toMatchObject({ error: "request_timeout" });
      // The proxy, not this caller, ended the stream (RST_STREAM NO_ERROR after the answer).
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      session.destroy();
    }
  });

  it("lets one HTTP/2 connection have at most 100 requests open at the app; the other 100 of 200 wait their turn", async () => {
    const slow = await startSlowApp(150);
    try {
      const s = await limitedSidecar(slow.port, {});
      const session = http2.connect(`http://127.0.0.1:${s.proxyPort}`);
      session.on("error", () => {});
      try {
        const statuses = await Promise.all(
          Array.from(
            { length: 200 },
            () =>
              new Promise<number>((resolve, reject) => {
                const stream = session.request({ ":path": "/orders/x", authorization: `Bearer ${token}` });
                let status = 0;
                stream.once("response", (h) => {
                  status = Number(h[":status"]);
                });
                stream.resume();
                stream.once("error", reject);
                stream.once("close", () => resolve(status));
              }),
          ),
        );
        expect(statuses.every((st) => st === 200)).toBe(true);
        expect(slow.requests.done).toBe(200);
        expect(slow.requests.max).toBe(100);
      } finally {
        session.destroy();
      }
    } finally {
      slow.close();
    }
  });

  it("ends an HTTP/2 connection that opens 200 streams at once past the limit, and keeps serving others", async () => {
    const slow = await startSlowApp(300);
    try {
      const s = await limitedSidecar(slow.port, {});
      const frames = await rawH2Burst(s.proxyPort, 200, "/orders/x", token);
      await new Promise((r) => setTimeout(r, 400));
      // Node ends a session that opens streams past its advertised limit (GOAWAY, all its streams
      // reset): a connection error, which RFC 9113 §5.1.2 allows. Nothing past the limit reached the app.
      expect(frames.goaway).toBe(true);
      expect(frames.answered).toBe(0);
      expect(slow.requests.max).toBeLessThanOrEqual(100);
      // The sidecar is still up and answering.
      const conn = await rawConnection(s.proxyPort);
      expect(await getOn(conn)).toMatch(/^HTTP\/1\.1 200/);
      conn.socket.destroy();
    } finally {
      slow.close();
    }
  });

  it("opens at most GATEHOUSE_UPSTREAM_MAX_SOCKETS connections to an HTTP/1.1 app; further requests wait for one", async () => {
    const slow = await startSlowApp(100);
    try {
      const s = await limitedSidecar(slow.port, { GATEHOUSE_UPSTREAM_MAX_SOCKETS: "4" });
      const statuses = await Promise.all(
        Array.from(
          { length: 20 },
          () =>
            new Promise<number>((resolve, reject) => {
              http
                .get({ host: "127.0.0.1", port: s.proxyPort, path: "/public/x", agent: false }, (res) => {
                  res.resume();
                  res.on("end", () => resolve(res.statusCode!));
                })
                .on("error", reject);
            }),
        ),
      );
      expect(statuses).toEqual(Array(20).fill(200));
      expect(slow.connections.max).toBe(4);
      expect(slow.requests.max).toBe(4);
    } finally {
      slow.close();
    }
  });

  it("closes an HTTP/1.1 keep-alive connection idle for GATEHOUSE_IDLE_TIMEOUT", async () => {
    const s = await limitedSidecar(appPort(), {
      GATEHOUSE_IDLE_TIMEOUT: "200ms",
      GATEHOUSE_HEADERS_TIMEOUT: "10s",
    });
    const conn = await rawConnection(s.proxyPort);
    expect(await getOn(conn)).toMatch(/^HTTP\/1\.1 200/);
    const answered = Date.now();
    const closed = await Promise.race([
      conn.closed.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 1800)),
    ]);
    expect(closed).toBe(true);
    // Node closes a keep-alive connection 1 s after the timeout it announces (keepAliveTimeoutBuffer).
    expect(Date.now() - answered).toBeLessThan(1600);
  });

  it("tells an HTTP/2 session with no open stream for GATEHOUSE_IDLE_TIMEOUT to go away, and closes it", async () => {
    const s = await limitedSidecar(appPort(), {
      GATEHOUSE_IDLE_TIMEOUT: "200ms",
      GATEHOUSE_HEADERS_TIMEOUT: "10s",
    });
    const session = http2.connect(`http://127.0.0.1:${s.proxyPort}`);
    session.on("error", () => {});
    try {
      const goaway = new Promise<void>((r) => session.once("goaway", () => r()));
      const closed = new Promise<void>((r) => session.once("close", () => r()));
      const stream = session.request({ ":path": "/public/x" });
      stream.resume();
      await new Promise((r) => stream.once("close", r));
      const idleSince = Date.now();
      const outcome = await Promise.race([
        Promise.all([goaway, closed]).then(() => "closed"),
        new Promise((r) => setTimeout(() => r("still open"), 1500)),
      ]);
      expect(outcome).toBe("closed");
      expect(Date.now() - idleSince).toBeLessThan(1000);
    } finally {
      session.destroy();
    }
  });

  it("cuts an HTTP/1.1 caller that sends half a request head within GATEHOUSE_HEADERS_TIMEOUT", async () => {
    const s = await limitedSidecar(appPort(), {
      GATEHOUSE_HEADERS_TIMEOUT: "300ms",
      GATEHOUSE_IDLE_TIMEOUT: "10s",
    });
    const conn = await rawConnection(s.proxyPort);
    conn.socket.write("GET /public/x HTTP/1.1\r\nhost: a\r\n"); // no blank line: the head never ends
    const closedAfter = await Promise.race([
      conn.closed,
      new Promise<number>((r) => setTimeout(() => r(-1), 1500)),
    ]);
    expect(closedAfter).toBeGreaterThan(0);
    expect(closedAfter).toBeLessThan(1000);
    // Refused as a timeout, never forwarded as a request.
    expect(conn.data()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it("closes a connection that sends nothing within GATEHOUSE_HEADERS_TIMEOUT", async () => {
    const s = await limitedSidecar(appPort(), {
      GATEHOUSE_HEADERS_TIMEOUT: "300ms",
      GATEHOUSE_IDLE_TIMEOUT: "10s",
    });
    const conn = await rawConnection(s.proxyPort);
    const closedAfter = await Promise.race([
      conn.closed,
      new Promise<number>((r) => setTimeout(() => r(-1), 1500)),
    ]);
    expect(closedAfter).toBeGreaterThan(0);
    expect(closedAfter).toBeLessThan(1000);
    expect(conn.data()).toBe("");
  });

  it("tells an HTTP/2 session that opens no stream within GATEHOUSE_HEADERS_TIMEOUT to go away", async () => {
    const s = await limitedSidecar(appPort(), {
      GATEHOUSE_HEADERS_TIMEOUT: "300ms",
      GATEHOUSE_IDLE_TIMEOUT: "10s",
    });
    const session = http2.connect(`http://127.0.0.1:${s.proxyPort}`);
    session.on("error", () => {});
    try {
      const started = Date.now();
      const outcome = await Promise.race([
        new Promise((r) => session.once("close", () => r("closed"))),
        new Promise((r) => setTimeout(() => r("still open"), 1500)),
      ]);
      expect(outcome).toBe("closed");
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      session.destroy();
    }
  });

  it("closes a connection beyond GATEHOUSE_MAX_CONNECTIONS at once while the open ones keep working", async () => {
    const s = await limitedSidecar(appPort(), {
      GATEHOUSE_MAX_CONNECTIONS: "3",
      GATEHOUSE_IDLE_TIMEOUT: "10s",
    });
    const open = [
      await rawConnection(s.proxyPort),
      await rawConnection(s.proxyPort),
      await rawConnection(s.proxyPort),
    ];
    for (const conn of open) expect(await getOn(conn)).toMatch(/^HTTP\/1\.1 200/);
    const fourth = await rawConnection(s.proxyPort);
    fourth.socket.write(GET);
    const closedAfter = await Promise.race([
      fourth.closed,
      new Promise<number>((r) => setTimeout(() => r(-1), 1000)),
    ]);
    expect(closedAfter).toBeGreaterThanOrEqual(0);
    expect(closedAfter).toBeLessThan(500);
    expect(fourth.data()).toBe("");
    for (const conn of open) expect(await getOn(conn)).toMatch(/^HTTP\/1\.1 200/);
    for (const conn of open) conn.socket.destroy();
  });

  it("frees the slot of a caller who hangs up before sending a byte at once, not at the headers timeout", async () => {
    const s = await limitedSidecar(appPort(), {
      GATEHOUSE_MAX_CONNECTIONS: "3",
      GATEHOUSE_HEADERS_TIMEOUT: "20s",
    });
    // Ten callers connect and hang up (FIN) without a request: each must leave no half-open socket
    // behind, or three of them would fill the cap for 20 s.
    for (let i = 0; i < 10; i++) {
      const gone = await rawConnection(s.proxyPort);
      gone.socket.end();
      expect(await gone.closed).toBeLessThan(1000);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const open = [
      await rawConnection(s.proxyPort),
      await rawConnection(s.proxyPort),
      await rawConnection(s.proxyPort),
    ];
    for (const conn of open) expect(await getOn(conn)).toMatch(/^HTTP\/1\.1 200/);
    for (const conn of open) conn.socket.destroy();
  });
});

/**
 * Opens `count` streams at once on a raw HTTP/2 connection, ignoring the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS (as a hostile caller would), and counts the streams the server
 * refuses (RST_STREAM REFUSED_STREAM) until every stream was answered or refused.
 */
async function rawH2Burst(port: number, count: number, path: string, bearer: string) {
  const conn = await rawConnection(port);
  const frame = (type: number, flags: number, streamId: number, payload: Buffer) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head.writeUInt8(type, 3);
    head.writeUInt8(flags, 4);
    head.writeUInt32BE(streamId, 5);
    return Buffer.concat([head, payload]);
  };
  // HPACK integer with an N-bit prefix (RFC 7541 §5.1).
  const integer = (value: number, bits: number, flags = 0) => {
    const max = (1 << bits) - 1;
    if (value < max) return [flags | value];
    const out = [flags | max];
    let rest = value - max;
    for (; rest >= 128; rest = Math.floor(rest / 128)) out.push((rest % 128) + 128);
    out.push(rest);
    return out;
  };
  // Literal header field without indexing, name from the static table (RFC 7541 §6.2.2).
  const literal = (index: number, value: string) =>
    Buffer.concat([
      Buffer.from([...integer(index, 4), ...integer(value.length, 7)]),
      Buffer.from(value, "latin1"),
    ]);
  // :method GET (static 2), :scheme http (static 6), :path (4), :authority (1), authorization (23).
  const block = Buffer.concat([
    Buffer.from([0x82, 0x86]),
    literal(4, path),
    literal(1, "127.0.0.1"),
    literal(23, `Bearer ${bearer}`),
  ]);
  let refused = 0;
  let answered = 0;
  let goaway = false;
  let buffered = Buffer.alloc(0);
  let settingsSeen = false;
  conn.socket.removeAllListeners("data");
  conn.socket.on("data", (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const type = buffered.readUInt8(3);
      const flags = buffered.readUInt8(4);
      const payload = buffered.subarray(9, 9 + length);
      buffered = buffered.subarray(9 + length);
      if (type === 0x4 && (flags & 0x1) === 0 && !settingsSeen) {
        settingsSeen = true;
        const burst = [frame(0x4, 0x1, 0, Buffer.alloc(0))];
        for (let i = 0; i < count; i++) burst.push(frame(0x1, 0x5, 1 + 2 * i, block));
        conn.socket.write(Buffer.concat(burst));
      }
      if (type === 0x3 && payload.readUInt32BE(0) === http2.constants.NGHTTP2_REFUSED_STREAM) refused++;
      if (type === 0x1) answered++;
      if (type === 0x7) goaway = true;
    }
  });
  conn.socket.write(
    Buffer.concat([
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"),
      frame(0x4, 0, 0, Buffer.alloc(0)),
    ]),
  );
  await expect.poll(() => refused + answered >= count || goaway, { timeout: 3000 }).toBeTruthy();
  conn.socket.destroy();
  return { refused, answered, goaway };
}
