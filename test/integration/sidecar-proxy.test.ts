import { createHash, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import type { RunningSidecar } from "../../services/sidecar/sidecar.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import {
  removePolicies,
  startTestSidecar,
  startTestTokenService,
  type TestTokenService,
  writePolicy,
} from "../support/sidecar-fixtures.ts";
import { decodeFailure } from "../support/token-clients.ts";

const POLICY = `
default: { audiences: [orders] }
rules:
  - match: { prefix: /public }
    public: true
  - match: { prefix: /admin }
    scopes: { allOf: [orders:write] }
  - match: { grpc: /test.Echo/* }
    scopes: { allOf: [orders:read] }
`;

// ---- upstreams ----

/** Resolvers the HTTP upstream's slow endpoints wait on, so tests can prove nothing is buffered. */
const gates = { release: () => {}, firstChunk: () => {} };
/** The request targets of the WebSocket handshakes the HTTP upstream received. */
const upgradeTargets: string[] = [];

function startHttpUpstream() {
  let connections = 0;
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    if (url.startsWith("/stream")) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first\n");
      new Promise<void>((r) => {
        gates.release = r;
      }).then(() => res.end("second\n"));
      return;
    }
    if (url.startsWith("/upload")) {
      let bytes = 0;
      let chunks = 0;
      req.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        if (chunks++ === 0) gates.firstChunk();
      });
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ bytes, chunks }));
      });
      return;
    }
    if (url.startsWith("/echo-trailers")) {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => {
        body += d;
      });
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({ body, trailers: req.trailers, subject: req.headers["x-gatehouse-subject"] }),
        );
      });
      return;
    }
    if (url.startsWith("/trailers")) {
      res.writeHead(200, { "content-type": "text/plain", trailer: "x-checksum" });
      res.write("body");
      res.addTrailers({ "x-checksum": "c0ffee" });
      res.end();
      return;
    }
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "x-upstream": "http1" });
      res.end(JSON.stringify({ method: req.method, url, headers: req.headers }));
    });
  });
  server.on("connection", () => connections++);
  server.on("upgrade", (req: http.IncomingMessage, socket: Socket) => {
    upgradeTargets.push(req.url ?? "");
    const accept = createHash("sha1")
      .update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const subject = String(req.headers["x-gatehouse-subject"]);
    socket.on("data", (frame: Buffer) => {
      const text = wsRead(frame);
      // The app ends the connection on request (a real app would send a close frame first).
      if (text === "goodbye") socket.end();
      else socket.write(wsFrame(`echo:${text}|${subject}`, false));
    });
  });
  return { server, connections: () => connections };
}

const h2Sessions = new Set<http2.ServerHttp2Session>();

function startH2Upstream() {
  const server = http2.createServer();
  server.on("session", (session) => {
    h2Sessions.add(session);
    session.once("close", () => h2Sessions.delete(session));
  });
  server.on("stream", (stream, headers) => {
    const path = headers[":path"] ?? "/";
    if (path.startsWith("/trailers")) {
      stream.respond({ ":status": 200, "content-type": "text/plain" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "x-checksum": "c0ffee" }));
      stream.end("body");
      return;
    }
    if (path.startsWith("/echo-trailers")) {
      let body = "";
      let trailers: http2.IncomingHttpHeaders = {};
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => {
        body += d;
      });
      stream.once("trailers", (t: http2.IncomingHttpHeaders) => {
        trailers = t;
      });
      stream.on("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/json" });
        stream.end(JSON.stringify({ body, trailers, subject: headers["x-gatehouse-subject"] }));
      });
      return;
    }
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/json", "x-upstream": "h2" });
      stream.end(
        JSON.stringify({ path, method: headers[":method"], headers, body: Buffer.concat(chunks).toString() }),
      );
    });
  });
  return server;
}

const raw = (b: Buffer) => b;
const ECHO = {
  unary: {
    path: "/test.Echo/Unary",
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
  serverStream: {
    path: "/test.Echo/ServerStream",
    requestStream: false,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
  clientStream: {
    path: "/test.Echo/ClientStream",
    requestStream: true,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
} satisfies grpc.ServiceDefinition;
const EchoClient = grpc.makeGenericClientConstructor(ECHO, "Echo");

async function startGrpcUpstream(): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(ECHO, {
    unary(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      const md = call.metadata.getMap();
      callback(null, Buffer.from(JSON.stringify({ request: call.request.toString(), metadata: md })));
    },
    serverStream(call: grpc.ServerWritableStream<Buffer, Buffer>) {
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(`item-${i}`));
      const trailer = new grpc.Metadata();
      trailer.set("x-count", String(n));
      call.end(trailer);
    },
    clientStream(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      const parts: string[] = [];
      call.on("data", (b: Buffer) => parts.push(b.toString()));
      call.on("end", () => callback(null, Buffer.from(parts.join("+"))));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port };
}

// ---- WebSocket frames (text, < 126 bytes) ----

function wsFrame(text: string, masked: boolean): Buffer {
  const payload = Buffer.from(text);
  if (!masked) return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, body]);
}

function wsRead(frame: Buffer): string {
  const masked = (frame[1]! & 0x80) !== 0;
  const length = frame[1]! & 0x7f;
  if (!masked) return frame.subarray(2, 2 + length).toString();
  const mask = frame.subarray(2, 6);
  return Buffer.from(frame.subarray(6, 6 + length).map((b, i) => b ^ mask[i % 4]!)).toString();
}

// ---- setup ----

let tdb: TestDatabase;
let ts: TestTokenService;
const httpUp = startHttpUpstream();
const h2Up = startH2Upstream();
let grpcUp: { server: grpc.Server; port: number };
const revocation = createMemoryRevocationState({ stalenessBoundMs: 60_000 });
let viaHttp: RunningSidecar;
let viaH2: RunningSidecar;
let viaGrpc: RunningSidecar;
let downPort: number;
const sidecars: RunningSidecar[] = [];
let reader: { token: string; sessionId: string };
let writer: { token: string; sessionId: string };
let billing: { token: string; sessionId: string };
let noReadScope: { token: string; sessionId: string };
const policyFile = writePolicy(POLICY);

const portOf = (s: http.Server | http2.Http2Server) => (s.address() as AddressInfo).port;
const listen = (s: http.Server | http2.Http2Server) =>
  new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));

async function sidecarFor(upstream: string, env: Record<string, string> = {}) {
  const sidecar = await startTestSidecar(
    {
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_POLICY_FILE: policyFile,
      GATEHOUSE_UPSTREAM: upstream,
      GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT: "500ms",
      ...env,
    },
    { revocation },
  );
  sidecars.push(sidecar);
  return sidecar;
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  ts = await startTestTokenService(tdb);
  revocation.markFresh(Date.now());
  await Promise.all([listen(httpUp.server), listen(h2Up)]);
  grpcUp = await startGrpcUpstream();
  const closed = createTcpServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", () => r()));
  downPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  viaHttp = await sidecarFor(`http://127.0.0.1:${portOf(httpUp.server)}`);
  viaH2 = await sidecarFor(`h2c://127.0.0.1:${portOf(h2Up)}`);
  viaGrpc = await sidecarFor(`h2c://127.0.0.1:${grpcUp.port}`);
  reader = await ts.issue("alice", ["orders:read"]);
  writer = await ts.issue("bob", ["orders:read", "orders:write"]);
  billing = await ts.issue("erin", ["billing:read"], ["billing"]);
  noReadScope = await ts.issue("gina", ["billing:read"]);
});
afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.shutdown(100)));
  grpcUp?.server.forceShutdown();
  httpUp.server.closeAllConnections();
  httpUp.server.close();
  h2Up.close();
  await ts?.service.shutdown();
  await tdb?.drop();
  removePolicies();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: string;
  reused: boolean;
}

function request(
  port: number,
  path: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string; agent?: http.Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? "GET",
        headers: options.headers,
        agent: options.agent,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            trailers: res.trailers,
            body,
            reused: req.reusedSocket,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const bearer = (t: { token: string }) => ({ authorization: `Bearer ${t.token}` });

// ---- HTTP/1.1 upstream ----

describe("proxy to an HTTP/1.1 upstream", () => {
  it("injects identity headers and strips spoofed x-gatehouse-* and hop-by-hop headers", async () => {
    const res = await request(viaHttp.proxyPort, "/api/orders?limit=5", {
      headers: {
        ...bearer(reader),
        "x-gatehouse-subject": "mallory",
        "X-Gatehouse-Admin": "yes",
        connection: "keep-alive, x-private",
        "x-private": "secret",
        "keep-alive": "timeout=5",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        te: "trailers, deflate",
        "x-request-id": "r-1",
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers["x-upstream"]).toBe("http1");
    const seen = JSON.parse(res.body);
    expect(seen.url).toBe("/api/orders?limit=5");
    expect(seen.headers).toMatchObject({
      "x-gatehouse-subject": "alice",
      "x-gatehouse-client-id": "web",
      "x-gatehouse-scopes": "orders:read",
      "x-gatehouse-session-id": reader.sessionId,
      authorization: `Bearer ${reader.token}`,
      "x-request-id": "r-1",
      te: "trailers",
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "http",
    });
    for (const gone of [
      "x-gatehouse-admin",
      "x-private",
      "keep-alive",
      "proxy-authorization",
      "x-gatehouse-jwt",
    ]) {
      expect(seen.headers).not.toHaveProperty(gone);
    }
  });

  it("keeps connections alive on both sides", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = httpUp.connections();
    const answers = [];
    for (let i = 0; i < 4; i++)
      answers.push(await request(viaHttp.proxyPort, `/api/${i}`, { headers: bearer(reader), agent }));
    expect(answers.map((a) => a.reused)).toEqual([false, true, true, true]);
    expect(httpUp.connections() - before).toBeLessThanOrEqual(1);
    agent.destroy();
  });

  it("streams the response: the first chunk arrives before the app has finished", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.get(
        { host: "127.0.0.1", port: viaHttp.proxyPort, path: "/stream", headers: bearer(reader) },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => {
            text += d;
            if (text === "first\n") gates.release();
          });
          res.on("end", () => resolve(text));
        },
      );
      req.on("error", reject);
    });
    expect(body).toBe("first\nsecond\n");
  });

  it("streams the request: the app sees the first chunk before the caller sends the second", async () => {
    const firstSeen = new Promise<void>((r) => {
      gates.firstChunk = r;
    });
    const answer = new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: viaHttp.proxyPort,
          path: "/upload",
          method: "POST",
          headers: { ...bearer(reader), "transfer-encoding": "chunked" },
        },
        (res) => {
          let text = "";
          res.on("data", (d) => {
            text += d;
          });
          res.on("end", () => resolve(text));
        },
      );
      req.on("error", reject);
      req.write("a".repeat(1000));
      firstSeen.then(() => req.end("b".repeat(500)));
    });
    expect(JSON.parse(await answer)).toMatchObject({ bytes: 1500 });
  });

  it("forwards response trailers", async () => {
    const res = await request(viaHttp.proxyPort, "/trailers", { headers: bearer(reader) });
    expect(res.body).toBe("body");
    expect(res.trailers["x-checksum"]).toBe("c0ffee");
  });

  it("passes the normalized path it matched, so /public/../admin is /admin", async () => {
    const denied = await request(viaHttp.proxyPort, "/public/../admin/users");
    expect(denied.status).toBe(401);
    const allowed = await request(viaHttp.proxyPort, "/public/..//admin/%75sers?x=%2e", {
      headers: bearer(writer),
    });
    expect(allowed.status).toBe(200);
    expect(JSON.parse(allowed.body).url).toBe("/admin/users?x=%2e");
  });

  it("lets public routes through without a token, with identity only for a valid one", async () => {
    const anonymous = JSON.parse(
      (await request(viaHttp.proxyPort, "/public/a", { headers: { "x-gatehouse-subject": "mallory" } })).body,
    );
    expect(anonymous.headers).not.toHaveProperty("x-gatehouse-subject");
    const known = JSON.parse(
      (await request(viaHttp.proxyPort, "/public/a", { headers: bearer(reader) })).body,
    );
    expect(known.headers["x-gatehouse-subject"]).toBe("alice");
    const badToken = await request(viaHttp.proxyPort, "/public/a", {
      headers: { authorization: "Bearer x.y.z" },
    });
    expect(badToken.status).toBe(200);
    expect(JSON.parse(badToken.body).headers).not.toHaveProperty("x-gatehouse-subject");
  });

  it("refuses per RFC 6750: 401 without a token, 401 invalid_token, 403 insufficient_scope", async () => {
    const missing = await request(viaHttp.proxyPort, "/api/x");
    expect(missing.status).toBe(401);
    expect(missing.headers["www-authenticate"]).toBe('Bearer realm="gatehouse"');
    expect(missing.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(missing.body)).toEqual({ error: "missing_token", message: "no bearer token" });

    const wrongAudience = await request(viaHttp.proxyPort, "/api/x", { headers: bearer(billing) });
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.headers["www-authenticate"]).toBe(
      'Bearer realm="gatehouse", error="invalid_token", error_description="wrong_audience"',
    );

    const scope = await request(viaHttp.proxyPort, "/admin/users", { headers: bearer(reader) });
    expect(scope.status).toBe(403);
    expect(scope.headers["www-authenticate"]).toBe(
      'Bearer realm="gatehouse", error="insufficient_scope", error_description="insufficient_scope", scope="orders:write"',
    );
    expect(JSON.parse(scope.body)).toMatchObject({ error: "insufficient_scope" });
  });

  it("does not let a gRPC content-type dodge an HTTP rule", async () => {
    const res = await request(viaHttp.proxyPort, "/admin/users", {
      method: "POST",
      headers: { ...bearer(reader), "content-type": "application/grpc" },
    });
    expect(res.headers["grpc-status"]).toBe("7");
  });

  it("proxies a WebSocket upgrade and echoes frames both ways", async () => {
    const socket = connect(viaHttp.proxyPort, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    socket.write(
      [
        "GET /ws HTTP/1.1",
        "Host: app.test",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        `Authorization: Bearer ${reader.token}`,
        "",
        "",
      ].join("\r\n"),
    );
    let buffered = Buffer.alloc(0);
    const read = async (predicate: (b: Buffer) => boolean) => {
      while (!predicate(buffered)) {
        buffered = Buffer.concat([buffered, await new Promise<Buffer>((r) => socket.once("data", r))]);
      }
    };
    await read((b) => b.includes("\r\n\r\n"));
    const end = buffered.indexOf("\r\n\r\n") + 4;
    expect(buffered.subarray(0, end).toString()).toMatch(/^HTTP\/1\.1 101 /);
    expect(buffered.subarray(0, end).toString()).toContain(
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    );
    buffered = buffered.subarray(end);
    socket.write(wsFrame("hello", true));
    await read((b) => b.length >= 2 && b.length >= 2 + (b[1]! & 0x7f));
    expect(wsRead(buffered)).toBe("echo:hello|alice");
    socket.destroy();
  });

  it("refuses a WebSocket handshake without a token", async () => {
    const socket = connect(viaHttp.proxyPort, "127.0.0.1");
    socket.write(
      "GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (d) => {
      text += d;
    });
    await new Promise((r) => socket.once("close", r));
    expect(text).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
    expect(text.toLowerCase()).toContain('www-authenticate: bearer realm="gatehouse"');
  });

  it("declines other upgrades (curl --http2's Upgrade: h2c) by passing the request on as a plain one", async () => {
    const socket = connect(viaHttp.proxyPort, "127.0.0.1");
    socket.write(
      `GET /api/h2c HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nAuthorization: Bearer ${reader.token}\r\n\r\n`,
    );
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (d) => {
      text += d;
    });
    await new Promise((r) => socket.once("close", r));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    const seen = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    expect(seen.headers).toMatchObject({ "x-gatehouse-subject": "alice" });
    expect(seen.headers).not.toHaveProperty("upgrade");
    expect(seen.headers).not.toHaveProperty("http2-settings");
  });

  it("answers 502 at once when the app is down", async () => {
    const down = await sidecarFor(`http://127.0.0.1:${downPort}`);
    const started = Date.now();
    const res = await request(down.proxyPort, "/api/x", { headers: bearer(reader) });
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toMatchObject({ error: "unavailable" });
    expect(Date.now() - started).toBeLessThan(1000);
    const metrics = await (await fetch(`http://127.0.0.1:${down.controlPort}/metrics`)).text();
    expect(metrics).toMatch(/gatehouse_sidecar_upstream_errors_total\{reason="connect_failed"/);
  });
});

// ---- HTTP/2 (h2c) upstream ----

function h2request(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<{
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  body: string;
}> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    let text = "";
    stream.on("response", (h) => {
      head = h;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => {
      text += d;
    });
    stream.on("end", () => {
      session.close();
      resolve({ headers: head, trailers, body: text });
    });
    stream.on("error", (err) => {
      session.close();
      reject(err);
    });
    if (body !== undefined) stream.end(body);
  });
}

describe("proxy to an h2c upstream", () => {
  it("serves HTTP/2 callers with identity headers, bodies and :authority passed on", async () => {
    const res = await h2request(
      viaH2.proxyPort,
      {
        ":method": "POST",
        ":path": "/api/h2?q=1",
        ":authority": "app.test",
        ...bearer(reader),
        "x-gatehouse-scopes": "admin",
      },
      "payload",
    );
    expect(res.headers[":status"]).toBe(200);
    const seen = JSON.parse(res.body);
    expect(seen).toMatchObject({ path: "/api/h2?q=1", method: "POST", body: "payload" });
    expect(seen.headers).toMatchObject({
      ":authority": "app.test",
      "x-gatehouse-subject": "alice",
      "x-gatehouse-scopes": "orders:read",
    });
  });

  it("forwards trailers to HTTP/2 callers", async () => {
    const res = await h2request(viaH2.proxyPort, { ":path": "/trailers", ...bearer(reader) });
    expect(res.body).toBe("body");
    expect(res.trailers?.["x-checksum"]).toBe("c0ffee");
  });

  it("serves HTTP/1.1 callers too", async () => {
    const res = await request(viaH2.proxyPort, "/api/h1", {
      headers: { ...bearer(reader), host: "app.test" },
    });
    expect(res.status).toBe(200);
    expect(res.headers["x-upstream"]).toBe("h2");
    expect(JSON.parse(res.body).headers).toMatchObject({
      ":authority": "app.test",
      "x-gatehouse-subject": "alice",
    });
  });

  it("opens a new upstream session when the app closes the old one", async () => {
    expect((await request(viaH2.proxyPort, "/api/before", { headers: bearer(reader) })).status).toBe(200);
    expect(h2Sessions.size).toBeGreaterThan(0);
    for (const session of h2Sessions) session.destroy();
    await expect.poll(() => h2Sessions.size === 0, { timeout: 5000 }).toBeTruthy();
    await new Promise((r) => setTimeout(r, 20));
    const after = await request(viaH2.proxyPort, "/api/after", { headers: bearer(reader) });
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body).path).toBe("/api/after");
  });

  it("refuses HTTP/2 callers with the same answers", async () => {
    const res = await h2request(viaH2.proxyPort, { ":path": "/admin", ...bearer(reader) });
    expect(res.headers[":status"]).toBe(403);
    expect(res.headers["www-authenticate"]).toContain('error="insufficient_scope"');
  });
});

// ---- gRPC through the proxy ----

interface EchoStub extends grpc.Client {
  unary(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Buffer) => void): void;
  serverStream(req: Buffer, md: grpc.Metadata): grpc.ClientReadableStream<Buffer>;
  clientStream(
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res: Buffer) => void,
  ): grpc.ClientWritableStream<Buffer>;
}
const echoClient = (port: number) =>
  new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as EchoStub;
const metadata = (t?: { token: string }) => {
  const md = new grpc.Metadata();
  if (t) md.set("authorization", `Bearer ${t.token}`);
  md.set("x-gatehouse-subject", "mallory");
  return md;
};

function unary(client: EchoStub, md: grpc.Metadata, text = "ping"): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) =>
    client.unary(Buffer.from(text), md, (err: grpc.ServiceError | null, res: Buffer) =>
      err ? reject(err) : resolve(JSON.parse(res.toString())),
    ),
  );
}

describe("gRPC through the proxy (grpc-js client and server)", () => {
  it("carries unary calls with identity metadata", async () => {
    const client = echoClient(viaGrpc.proxyPort);
    const res = await unary(client, metadata(reader));
    expect(res.request).toBe("ping");
    expect(res.metadata).toMatchObject({
      "x-gatehouse-subject": "alice",
      "x-gatehouse-session-id": reader.sessionId,
      "x-gatehouse-scopes": "orders:read",
    });
    client.close();
  });

  it("carries server streaming, with trailers", async () => {
    const client = echoClient(viaGrpc.proxyPort);
    const call = client.serverStream(Buffer.from("5"), metadata(reader)) as grpc.ClientReadableStream<Buffer>;
    const items: string[] = [];
    let trailer: grpc.Metadata | undefined;
    call.on("data", (b: Buffer) => items.push(b.toString()));
    call.on("status", (s: grpc.StatusObject) => {
      trailer = s.metadata;
    });
    await new Promise((resolve, reject) => {
      call.on("end", resolve);
      call.on("error", reject);
    });
    expect(items).toEqual(["item-0", "item-1", "item-2", "item-3", "item-4"]);
    expect(trailer?.get("x-count")).toEqual(["5"]);
    client.close();
  });

  it("carries client streaming", async () => {
    const client = echoClient(viaGrpc.proxyPort);
    const result = await new Promise<string>((resolve, reject) => {
      const call = client.clientStream(metadata(reader), (err: grpc.ServiceError | null, res: Buffer) =>
        err ? reject(err) : resolve(res.toString()),
      ) as grpc.ClientWritableStream<Buffer>;
      for (const part of ["a", "b", "c"]) call.write(Buffer.from(part));
      call.end();
    });
    expect(result).toBe("a+b+c");
    client.close();
  });

  it("refuses with UNAUTHENTICATED / PERMISSION_DENIED and ErrorInfo details", async () => {
    const client = echoClient(viaGrpc.proxyPort);
    const missing = await unary(client, metadata()).catch((e: grpc.ServiceError) => decodeFailure(e));
    expect(missing).toMatchObject({
      code: 16,
      reason: "missing_token",
      domain: "gatehouse",
      message: "no bearer token",
    });
    const scope = await unary(client, metadata(noReadScope)).catch((e: grpc.ServiceError) =>
      decodeFailure(e),
    );
    expect(scope).toMatchObject({
      code: 7,
      reason: "insufficient_scope",
      metadata: { scope: "orders:read" },
    });
    client.close();
  });

  it("refuses a revoked session", async () => {
    const victim = await ts.issue("frank", ["orders:read"]);
    const client = echoClient(viaGrpc.proxyPort);
    await unary(client, metadata(victim));
    revocation.apply({
      type: "session_revoked",
      id: randomUUID(),
      at: Date.now(),
      until: Math.floor(Date.now() / 1000) + 3600,
      sid: victim.sessionId,
    });
    const f = await unary(client, metadata(victim)).catch((e: grpc.ServiceError) => decodeFailure(e));
    expect(f).toMatchObject({ code: 16, reason: "session_revoked" });
    const plain = await request(viaHttp.proxyPort, "/api/x", { headers: bearer(victim) });
    expect(plain.status).toBe(401);
    expect(plain.headers["www-authenticate"]).toContain('error_description="session_revoked"');
    client.close();
  });

  it("answers UNAVAILABLE at once when the app is down", async () => {
    const down = await sidecarFor(`h2c://127.0.0.1:${downPort}`);
    const client = echoClient(down.proxyPort);
    const started = Date.now();
    const f = await unary(client, metadata(reader)).catch((e: grpc.ServiceError) => decodeFailure(e));
    expect(f).toMatchObject({ code: 14 });
    expect(Date.now() - started).toBeLessThan(1000);
    client.close();
  });
});

// ---- policy reload and shutdown ----

// ---- WebSocket over HTTP/2 (RFC 8441) ----

/** Opens an extended CONNECT stream for a WebSocket at `path`; resolves with the answer's head. */
async function h2WebSocket(port: number, headers: http2.OutgoingHttpHeaders, path = "/ws") {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const settings = await new Promise<http2.Settings>((r) => session.once("remoteSettings", r));
  const stream = session.request({
    ":method": "CONNECT",
    ":protocol": "websocket",
    ":scheme": "http",
    ":path": path,
    ":authority": "app.test",
    "sec-websocket-version": "13",
    ...headers,
  });
  stream.on("error", () => {});
  const head = await new Promise<http2.IncomingHttpHeaders>((r) => stream.once("response", r));
  let buffered = Buffer.alloc(0);
  stream.on("data", (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
  });
  /** The first whole (short, text) frame received. */
  const frame = () =>
    expect
      .poll(() => buffered.length >= 2 && buffered.length >= 2 + (buffered[1]! & 0x7f), { timeout: 5000 })
      .toBe(true)
      .then(() => wsRead(buffered));
  const body = () =>
    new Promise<string>((r) =>
      stream.readableEnded ? r(buffered.toString()) : stream.once("end", () => r(buffered.toString())),
    );
  return { session, stream, settings, status: Number(head[":status"]), head, frame, body };
}

describe("WebSocket over HTTP/2 (extended CONNECT)", () => {
  it("advertises SETTINGS_ENABLE_CONNECT_PROTOCOL and bridges frames both ways to an HTTP/1.1 WebSocket app", async () => {
    const ws = await h2WebSocket(viaHttp.proxyPort, { ...bearer(reader), "x-gatehouse-subject": "mallory" });
    try {
      expect(ws.settings.enableConnectProtocol).toBe(true);
      expect(ws.status).toBe(200);
      // RFC 8441 §5: no Upgrade/Sec-WebSocket-Accept on HTTP/2; the sidecar checked the app's accept.
      expect(ws.head["sec-websocket-accept"]).toBeUndefined();
      ws.stream.write(wsFrame("hello", true));
      // The app saw the verified subject, not the caller's spoofed header.
      expect(await ws.frame()).toBe("echo:hello|alice");
    } finally {
      ws.session.destroy();
    }
  });

  it("ends the caller's stream cleanly when the app ends the connection", async () => {
    const ws = await h2WebSocket(viaHttp.proxyPort, bearer(reader));
    try {
      expect(ws.status).toBe(200);
      ws.stream.write(wsFrame("goodbye", true));
      await ws.body();
      await new Promise((r) => (ws.stream.closed ? r(null) : ws.stream.once("close", r)));
      expect(ws.stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      ws.session.destroy();
    }
  });

  it("refuses an extended CONNECT without a valid token, like any request", async () => {
    const none = await h2WebSocket(viaHttp.proxyPort, {});
    expect(none.status).toBe(401);
    expect(none.head["www-authenticate"]).toBe('Bearer realm="gatehouse"');
    none.session.destroy();
    const wrongAudience = await h2WebSocket(viaHttp.proxyPort, bearer(billing));
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.head["www-authenticate"]).toContain('error="invalid_token"');
    wrongAudience.session.destroy();
  });

  it("is no general tunnel: a plain CONNECT is 405", async () => {
    const session = http2.connect(`http://127.0.0.1:${viaHttp.proxyPort}`);
    const stream = session.request({ ":method": "CONNECT", ":authority": "example.test:443" });
    const head = await new Promise<http2.IncomingHttpHeaders>((r) => stream.once("response", r));
    expect(head[":status"]).toBe(405);
    session.destroy();
  });

  it("answers 502 when the app cannot be reached", async () => {
    const down = await sidecarFor(`http://127.0.0.1:${downPort}`);
    const ws = await h2WebSocket(down.proxyPort, bearer(reader));
    expect(ws.status).toBe(502);
    expect(JSON.parse(await ws.body())).toMatchObject({ error: "unavailable" });
    ws.session.destroy();
  });
});

// ---- request trailers ----

/** Spoofs that must not reach the app from a caller's trailers. */
const SPOOFED_TRAILERS = { "x-gatehouse-subject": "mallory", authorization: "Bearer forged" };

/** An HTTP/1.1 chunked POST with trailers after the body. */
function chunkedWithTrailers(port: number, path: string, trailers: http.OutgoingHttpHeaders) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent: false,
        headers: {
          ...bearer(reader),
          "transfer-encoding": "chunked",
          trailer: Object.keys(trailers).join(", "),
        },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on("error", reject);
    req.write("part-1;");
    req.write("part-2");
    req.addTrailers(trailers);
    req.end();
  });
}

/** An HTTP/2 POST whose body is followed by a trailing HEADERS frame (as gRPC-style clients may send). */
function h2WithTrailers(port: number, path: string, trailers: http2.OutgoingHttpHeaders | undefined) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = session.request(
      { ":method": "POST", ":path": path, ...bearer(reader) },
      { waitForTrailers: trailers !== undefined },
    );
    if (trailers !== undefined) stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    let status = 0;
    let body = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => {
      body += d;
    });
    stream.on("end", () => {
      session.close();
      resolve({ status, body });
    });
    stream.on("error", (err) => {
      session.close();
      reject(err);
    });
    stream.write("part-1;");
    stream.end("part-2");
  });
}

describe("request trailers through the proxy", () => {
  const upstreams = () =>
    [
      ["HTTP/1.1", viaHttp],
      ["h2c", viaH2],
    ] as const;

  it("forwards an HTTP/1.1 caller's chunked trailers to HTTP/1.1 and h2c apps, minus spoofed ones", async () => {
    for (const [kind, sidecar] of upstreams()) {
      const res = await chunkedWithTrailers(sidecar.proxyPort, "/echo-trailers", {
        "x-checksum": "c0ffee",
        ...SPOOFED_TRAILERS,
      });
      expect(res.status, kind).toBe(200);
      const seen = JSON.parse(res.body);
      expect(seen.body, kind).toBe("part-1;part-2");
      expect(seen.trailers, kind).toEqual({ "x-checksum": "c0ffee" });
      expect(seen.subject, kind).toBe("alice");
    }
  });

  it("forwards an HTTP/2 caller's trailers to HTTP/1.1 (as chunked trailers) and h2c apps", async () => {
    for (const [kind, sidecar] of upstreams()) {
      const res = await h2WithTrailers(sidecar.proxyPort, "/echo-trailers", {
        "x-checksum": "beef",
        "grpc-status-details-bin": "AAAA",
        ...SPOOFED_TRAILERS,
      });
      expect(res.status, kind).toBe(200);
      const seen = JSON.parse(res.body);
      expect(seen.body, kind).toBe("part-1;part-2");
      expect(seen.trailers, kind).toEqual({ "x-checksum": "beef", "grpc-status-details-bin": "AAAA" });
      expect(seen.subject, kind).toBe("alice");
    }
  });

  it("ends a request without trailers as it was, with no trailers invented", async () => {
    for (const [kind, sidecar] of upstreams()) {
      const res = await h2WithTrailers(sidecar.proxyPort, "/echo-trailers", undefined);
      expect(res.status, kind).toBe(200);
      const seen = JSON.parse(res.body);
      expect(seen.body, kind).toBe("part-1;part-2");
      expect(seen.trailers, kind).toEqual({});
    }
  });
});

describe("operations", () => {
  it("reloads the policy file without dropping connections", async () => {
    const file = writePolicy(POLICY);
    const sidecar = await sidecarFor(`http://127.0.0.1:${portOf(httpUp.server)}`, {
      GATEHOUSE_POLICY_FILE: file,
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    expect((await request(sidecar.proxyPort, "/reloaded", { agent })).status).toBe(401);
    writeFileSync(file, `${POLICY}\n  - match: { prefix: /reloaded }\n    public: true\n`);
    await expect
      .poll(async () => (await request(sidecar.proxyPort, "/reloaded", { agent })).status === 200, {
        timeout: 5000,
      })
      .toBeTruthy();
    const after = await request(sidecar.proxyPort, "/reloaded", { agent });
    expect(after.reused).toBe(true);
    // A file that does not compile leaves the last good policy in force.
    writeFileSync(file, "rules: [ { match: { prefix: nope } } ]");
    await expect
      .poll(async () => (await fetch(`http://127.0.0.1:${sidecar.controlPort}/metrics`)).text(), {
        timeout: 5000,
      })
      .toMatch(/gatehouse_sidecar_policy_reloads_total\{outcome="error"/);
    expect((await request(sidecar.proxyPort, "/reloaded", { agent })).status).toBe(200);
    // /readyz says the file on disk was refused, and stays ready: the previous policy still decides.
    const refused = await fetch(`http://127.0.0.1:${sidecar.controlPort}/readyz`);
    expect(refused.status).toBe(200);
    const body = (await refused.json()) as { policyReload: { refused: boolean; at: string } };
    expect(body.policyReload).toMatchObject({ refused: true, error: expect.stringContaining(file) });
    expect(Date.parse(body.policyReload.at)).toBeGreaterThan(0);
    // A file that compiles again clears it.
    writeFileSync(file, POLICY);
    await expect
      .poll(async () => (await request(sidecar.proxyPort, "/reloaded", { agent })).status === 401, {
        timeout: 5000,
      })
      .toBeTruthy();
    const fixed = (await (await fetch(`http://127.0.0.1:${sidecar.controlPort}/readyz`)).json()) as object;
    expect(fixed).toMatchObject({ policyReload: { refused: false } });
    agent.destroy();
  });

  it("drains on shutdown: not ready, no new connections, requests in flight finish", async () => {
    const sidecar = await sidecarFor(`http://127.0.0.1:${portOf(httpUp.server)}`);
    let received = "";
    const inFlight = new Promise<string>((resolve, reject) => {
      http
        .get(
          { host: "127.0.0.1", port: sidecar.proxyPort, path: "/stream", headers: bearer(reader) },
          (res) => {
            res.setEncoding("utf8");
            res.on("data", (d: string) => {
              received += d;
            });
            res.on("end", () => resolve(received));
          },
        )
        .on("error", reject);
    });
    await expect.poll(() => received === "first\n", { timeout: 5000 }).toBeTruthy();
    const stopped = sidecar.shutdown(5000);
    const ready = await fetch(`http://127.0.0.1:${sidecar.controlPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, problems: ["draining"] });
    await expect(request(sidecar.proxyPort, "/api/x", { headers: bearer(reader) })).rejects.toThrow(
      /ECONNREFUSED/,
    );
    gates.release();
    expect(await inFlight).toBe("first\nsecond\n");
    await stopped;
  });
});

// ---- one canonical request (issue 14, items 1 and 2) ----

const CANON_POLICY = `
default: { audiences: [orders] }
rules:
  - match: { prefix: /public }
    public: true
  - match: { prefix: /admin }
    scopes: { allOf: [orders:write] }
  - match: { path: /internal }
    scopes: { allOf: [orders:write] }
  - match: { grpc: /demo.v1.DemoService/DeleteItem }
    scopes: { allOf: [orders:write] }
`;

/** Sends exact request bytes over HTTP/1.1 and reads the whole answer (the sidecar closes or we do). */
async function rawHttp1(port: number, target: string, headers: Record<string, string> = {}) {
  const socket = connect(port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  const lines = [`GET ${target} HTTP/1.1`, "Host: app.test", "Connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  let text = "";
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => {
    text += d;
  });
  await new Promise((r) => socket.once("close", r));
  const status = Number(text.slice(9, 12));
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

describe("one canonical request: the path the policy judges is the path the app receives", () => {
  let h1: RunningSidecar;
  let h2: RunningSidecar;
  const DELETE = "/demo.v1.DemoService/DeleteItem";
  const DELETE_SPELLINGS = [
    DELETE,
    "/demo.v1.DemoService//DeleteItem",
    "/demo.v1.DemoService/%44eleteItem",
    "/demo.v1.DemoService/x/../DeleteItem",
    "/demo.v1.demoservice/deleteitem",
  ];

  beforeAll(async () => {
    const file = writePolicy(CANON_POLICY);
    h1 = await sidecarFor(`http://127.0.0.1:${portOf(httpUp.server)}`, { GATEHOUSE_POLICY_FILE: file });
    h2 = await sidecarFor(`h2c://127.0.0.1:${portOf(h2Up)}`, { GATEHOUSE_POLICY_FILE: file });
  });

  it.each(DELETE_SPELLINGS)(
    "judges gRPC %s by the grpc rule, and forwards the canonical path",
    async (path) => {
      const call = (t: { token: string }) =>
        h2request(
          h2.proxyPort,
          { ":method": "POST", ":path": path, "content-type": "application/grpc", ...bearer(t) },
          "",
        );
      const refused = await call(reader);
      expect(refused.headers["grpc-status"]).toBe(String(grpc.status.PERMISSION_DENIED));
      const allowed = await call(writer);
      expect(allowed.headers[":status"]).toBe(200);
      // The lower-case spelling is another method to the app: forwarded as it is, but still guarded.
      const canonical = path === "/demo.v1.demoservice/deleteitem" ? path : DELETE;
      expect(JSON.parse(allowed.body).path).toBe(canonical);
    },
  );

  it.each([
    ["Connect JSON", "application/json"],
    ["Connect proto", "application/proto"],
    ["Connect streaming", "application/connect+proto"],
    ["gRPC-Web", "application/grpc-web+proto"],
    ["gRPC-Web text", "application/grpc-web-text"],
    ["no content type", undefined],
  ])("applies the grpc rule to %s over HTTP/1.1 and HTTP/2", async (_name, contentType) => {
    const type: Record<string, string> = contentType === undefined ? {} : { "content-type": contentType };
    for (const path of DELETE_SPELLINGS) {
      const h1Refused = await request(h1.proxyPort, path, {
        method: "POST",
        headers: { ...bearer(reader), ...type },
        body: "{}",
      });
      const grpcLike = contentType?.startsWith("application/grpc") === true;
      if (grpcLike) expect(h1Refused.headers["grpc-status"]).toBe(String(grpc.status.PERMISSION_DENIED));
      else expect(h1Refused.status).toBe(403);
      const h2Refused = await h2request(
        h2.proxyPort,
        { ":method": "POST", ":path": path, ...type, ...bearer(reader) },
        "{}",
      );
      if (grpcLike) expect(h2Refused.headers["grpc-status"]).toBe(String(grpc.status.PERMISSION_DENIED));
      else expect(h2Refused.headers[":status"]).toBe(403);
    }
    const allowed = await request(h1.proxyPort, "/demo.v1.DemoService/x/../%44eleteItem?a=%2e", {
      method: "POST",
      headers: { ...bearer(writer), ...type },
      body: "{}",
    });
    expect(allowed.status).toBe(200);
    expect(JSON.parse(allowed.body).url).toBe(`${DELETE}?a=%2e`);
  });

  it.each([
    "/ADMIN",
    "/Admin/panel",
    "/admin;jsessionid=x/panel",
    "/INTERNAL",
    "/internal/",
    "/Internal;v=1",
  ])("guards %s like the rule written in lower case without a trailing slash", async (path) => {
    expect((await request(h1.proxyPort, path)).status).toBe(401);
    expect((await request(h1.proxyPort, path, { headers: bearer(reader) })).status).toBe(403);
    const h2Refused = await h2request(h2.proxyPort, { ":path": path, ...bearer(reader) });
    expect(h2Refused.headers[":status"]).toBe(403);
    const allowed = await request(h1.proxyPort, path, { headers: bearer(writer) });
    expect(allowed.status).toBe(200);
    expect(JSON.parse(allowed.body).url).toBe(path);
  });

  it.each([
    ["/public/..;/admin", 400, "ambiguous_path"],
    ["/public/..;foo/admin", 400, "ambiguous_path"],
    ["/public/..\\admin", 400, "ambiguous_path"],
    ["/public/..%2fadmin", 400, "ambiguous_path"],
    ["/public/..%5Cadmin", 400, "ambiguous_path"],
    ["/public/../../admin", 400, "ambiguous_path"],
    ["/public/%00", 400, "invalid_path"],
    ["/public/caf%C3", 400, "invalid_path"],
    ["/public/caf\u00e9", 400, "invalid_path"],
    ["/public/a…(5000 bytes)", 414, "path_too_long"],
  ])("refuses %s with no token: %i %s", async (label, status, code) => {
    // `a…(N bytes)` stands for a path that long, so the test title stays readable.
    const path = label.replace(/a…\((\d+) bytes\)$/, (_, n) => "a".repeat(Number(n)));
    const before = upgradeTargets.length;
    const answer = await rawHttp1(h1.proxyPort, path);
    expect(answer.status).toBe(status);
    // Node's HTTP/1.1 parser already refuses raw non-ASCII bytes, before the sidecar sees them.
    if (!path.includes("\u00e9")) expect(JSON.parse(answer.body)).toMatchObject({ error: code });
    const h2Answer = await h2request(h2.proxyPort, { ":path": path });
    expect(h2Answer.headers[":status"]).toBe(status);
    expect(JSON.parse(h2Answer.body)).toMatchObject({ error: code });
    expect(upgradeTargets.length).toBe(before);
  });

  it("with GATEHOUSE_ALLOW_ENCODED_SLASHES, forwards %2F as it came and judges it as /", async () => {
    const lenient = await sidecarFor(`http://127.0.0.1:${portOf(httpUp.server)}`, {
      GATEHOUSE_POLICY_FILE: writePolicy(CANON_POLICY),
      GATEHOUSE_ALLOW_ENCODED_SLASHES: "true",
    });
    const open = await request(lenient.proxyPort, "/public/a%2fb");
    expect(open.status).toBe(200);
    expect(JSON.parse(open.body).url).toBe("/public/a%2Fb");
    expect((await request(lenient.proxyPort, "/Admin%2Fx", { headers: bearer(reader) })).status).toBe(403);
    // Public only when the path the app receives is public too: /public%2Fx may route elsewhere.
    expect((await request(lenient.proxyPort, "/public%2Fx")).status).toBe(401);
    const climb = await rawHttp1(lenient.proxyPort, "/public%2F..%2Fadmin");
    expect(climb.status).toBe(400);
    expect(JSON.parse(climb.body)).toMatchObject({ error: "ambiguous_path" });
  });

  it("serves public routes on their exact path only", async () => {
    expect((await request(h1.proxyPort, "/public/x")).status).toBe(200);
    expect((await request(h1.proxyPort, "/PUBLIC/x")).status).toBe(401);
    expect((await request(h1.proxyPort, "/public/x;a=b")).status).toBe(401);
  });

  it("judges and forwards the canonical path of WebSocket handshakes (HTTP/1.1 and RFC 8441)", async () => {
    const handshake = (path: string, token?: { token: string }) =>
      rawHttp1(h1.proxyPort, path, {
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        ...(token ? { Authorization: `Bearer ${token.token}` } : {}),
      });
    expect((await handshake("/ADMIN/ws", reader)).status).toBe(403);
    expect((await handshake("/public/..;/admin/ws")).status).toBe(400);
    const ws = await h2WebSocket(h1.proxyPort, bearer(reader), "/Admin/ws");
    expect(ws.status).toBe(403);
    ws.session.destroy();

    const before = upgradeTargets.length;
    const allowed = connect(h1.proxyPort, "127.0.0.1");
    await new Promise((r) => allowed.once("connect", r));
    allowed.write(
      `GET /ws/%61//./chat?x=1 HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${reader.token}\r\n\r\n`,
    );
    await new Promise((r) => allowed.once("data", r));
    allowed.destroy();
    const h2ws = await h2WebSocket(h1.proxyPort, bearer(reader), "/ws/b/../%63hat");
    expect(h2ws.status).toBe(200);
    h2ws.session.destroy();
    expect(upgradeTargets.slice(before)).toEqual(["/ws/a/chat?x=1", "/ws/chat"]);
  });
});
