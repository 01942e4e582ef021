// The protocol-neutral RPC layer, end to end over real sockets: one handler set served over native
// gRPC (grpc-js), Connect (JSON, binary, GET) and gRPC-Web, called with real clients of each kind;
// errors on the wire, decode failures, limits, metrics, and graceful shutdown.
import { Writable } from "node:stream";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IntrospectRequestSchema,
  type IntrospectResponseSchema,
  IssueRequestSchema,
  TokenService,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { ErrorInfoSchema, RetryInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../services/gen/proto/google/rpc/status_pb.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createMetricsRegistry } from "../../services/shared/metrics/index.ts";
import {
  defineService,
  grpcServiceDefinition,
  type RpcServers,
  startRpcServers,
} from "../../services/shared/rpc/index.ts";

const SECRET = "password=hunter2";
const JWK = {
  kty: "OKP",
  crv: "Ed25519",
  x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
  kid: "k1",
  alg: "EdDSA",
  use: "sig",
};

/** Holds Revoke calls whose reason is "hold" until the test lets them go. */
function gate() {
  let count = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  return {
    released,
    release,
    entered() {
      count += 1;
      for (const w of waiters) if (count >= w.n) w.resolve();
    },
    /** Resolves once `n` calls are being held. */
    holding(n: number) {
      return new Promise<void>((resolve) => (count >= n ? resolve() : waiters.push({ n, resolve })));
    },
  };
}

function testService(held: ReturnType<typeof gate>) {
  return defineService(TokenService, {
    async getJwks() {
      return { keys: [JWK] };
    },
    async issue() {
      throw new GatehouseError("scope_not_allowed", "scope x is not allowed for this client", {
        metadata: { scope: "x" },
      });
    },
    async issueServiceToken() {
      throw new GatehouseError("rate_limited", "slow down", { retryAfterMs: 1500 });
    },
    async refresh() {
      throw new Error(`query failed: db ${SECRET}`);
    },
    async revoke(req) {
      if (req.reason === "hold") {
        held.entered();
        await held.released;
      }
      return { sessionsRevoked: 1 };
    },
    async introspect(req, ctx) {
      return {
        active: true,
        subject: ctx.header("x-subject") ?? "",
        clientId: ctx.protocol,
        jti: ctx.requestId,
        sessionId: ctx.peer ?? "",
        tokenType: `${ctx.service}/${ctx.method}`,
        scopes: [req.token],
      };
    },
    async listSessions() {
      return { sessions: [] };
    },
    async exchange() {
      throw new GatehouseError("actor_not_allowed", "not this actor");
    },
  });
}

function captureLogs() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { lines, logger: createLogger({ level: "info", component: "rpc-test", destination }) };
}

// --- grpc-js client helpers -----------------------------------------------------------------------

const TokenClient = grpc.makeGenericClientConstructor(grpcServiceDefinition(TokenService), "TokenService");
type GenericClient = InstanceType<typeof TokenClient>;
type Outcome<T> = { err: grpc.ServiceError | null; res: T | undefined };

function call<T>(
  client: GenericClient,
  method: string,
  request: unknown,
  metadata = new grpc.Metadata(),
): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    type Method = (
      req: unknown,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res?: T) => void,
    ) => void;
    const fn = (client as unknown as Record<string, Method>)[method]!;
    fn.call(client, request, metadata, (err, res) => resolve({ err, res }));
  });
}

/** A client that sends raw bytes to `/gatehouse.v1.TokenService/Issue`. */
const RawClient = grpc.makeGenericClientConstructor(
  {
    issue: {
      path: "/gatehouse.v1.TokenService/Issue",
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  },
  "Raw",
);

function errorDetails(err: grpc.ServiceError) {
  const bin = err.metadata.get("grpc-status-details-bin")[0];
  expect(bin).toBeInstanceOf(Buffer);
  const status = fromBinary(StatusSchema, bin as Buffer);
  expect(status.code).toBe(err.code);
  const info = anyUnpack(status.details[0]!, ErrorInfoSchema);
  const retry = status.details[1] ? anyUnpack(status.details[1], RetryInfoSchema) : undefined;
  return { status, info, retry };
}

// --- Connect helpers ------------------------------------------------------------------------------

interface ConnectErrorBody {
  code: string;
  message: string;
  details?: Array<{ type: string; value: string; debug?: unknown }>;
}

function errorInfoOf(body: ConnectErrorBody) {
  const detail = body.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  expect(detail).toBeDefined();
  return fromBinary(ErrorInfoSchema, Buffer.from(detail!.value, "base64"));
}

async function failure(pending: Promise<unknown>): Promise<ConnectError> {
  try {
    await pending;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}

/** One gRPC-Web frame: flags, big-endian length, payload. */
function frame(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.byteLength);
  out.set(payload, 5);
  return out;
}

/** The trailer frame of a gRPC-Web response body, as a header map. */
function grpcWebTrailer(body: Uint8Array): Map<string, string> {
  let offset = 0;
  while (offset + 5 <= body.byteLength) {
    const flags = body[offset]!;
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    const payload = body.subarray(offset + 5, offset + 5 + length);
    if (flags & 0x80) {
      const entries = new TextDecoder()
        .decode(payload)
        .split("\r\n")
        .filter(Boolean)
        .map((line) => {
          const colon = line.indexOf(":");
          return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as [
            string,
            string,
          ];
        });
      return new Map(entries);
    }
    offset += 5 + length;
  }
  throw new Error("no trailer frame");
}

// --- the servers ----------------------------------------------------------------------------------

describe("rpc layer", () => {
  const held = gate();
  const logs = captureLogs();
  const registry = createMetricsRegistry("rpc-test", { defaultMetrics: false });
  let servers: RpcServers;
  let client: GenericClient;
  let base: string;

  beforeAll(async () => {
    servers = await startRpcServers({
      grpc: { host: "127.0.0.1", port: 0 },
      http: { host: "127.0.0.1", port: 0 },
      services: [testService(held)],
      extraRoutes: {
        "GET /.well-known/jwks.json": (_req, res) => void res.end(JSON.stringify({ keys: [JWK] })),
      },
      logger: logs.logger,
      metrics: registry,
    });
    client = new TokenClient(`127.0.0.1:${servers.grpcPort}`, grpc.credentials.createInsecure());
    base = `http://127.0.0.1:${servers.httpPort}`;
  });

  afterAll(async () => {
    client?.close();
    await servers?.shutdown(1000);
  });

  describe("native gRPC (grpc-js client)", () => {
    it("serves a handler's response", async () => {
      const { err, res } = await call<{ keys: unknown[] }>(
        client,
        "getJwks",
        create(TokenService.method.getJwks.input),
      );
      expect(err).toBeNull();
      expect(res?.keys).toEqual([expect.objectContaining(JWK)]);
    });

    it("sends a GatehouseError as status + ErrorInfo in grpc-status-details-bin", async () => {
      const metadata = new grpc.Metadata();
      metadata.set("x-request-id", "req-issue-1");
      const { err } = await call(client, "issue", create(IssueRequestSchema, { subject: "alice" }), metadata);
      expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err?.details).toBe("scope x is not allowed for this client");
      const { info, retry } = errorDetails(err!);
      expect(info).toMatchObject({
        reason: "scope_not_allowed",
        domain: "gatehouse",
        metadata: { scope: "x", requestId: "req-issue-1" },
      });
      expect(retry).toBeUndefined();
    });

    it("adds RetryInfo when the error says when to retry", async () => {
      const { err } = await call(
        client,
        "issueServiceToken",
        create(TokenService.method.issueServiceToken.input),
      );
      expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      const { info, retry } = errorDetails(err!);
      expect(info?.reason).toBe("rate_limited");
      expect(retry?.retryDelay).toMatchObject({ seconds: 1n, nanos: 500_000_000 });
    });

    it("hides an unexpected error's text from the caller, logs it with the request id", async () => {
      const metadata = new grpc.Metadata();
      metadata.set("x-request-id", "req-refresh-1");
      const { err } = await call(client, "refresh", create(TokenService.method.refresh.input), metadata);
      expect(err?.code).toBe(grpc.status.INTERNAL);
      expect(err?.details).toBe("internal error");
      const { info, status } = errorDetails(err!);
      expect(info).toMatchObject({ reason: "internal", metadata: { requestId: "req-refresh-1" } });
      expect(JSON.stringify(err)).not.toContain("hunter2");
      expect(toBinary(StatusSchema, status).toString()).not.toContain("hunter2");
      const logged = logs.lines.find((l) => l.includes("req-refresh-1"));
      expect(logged).toContain("hunter2");
      expect(JSON.parse(logged!)).toMatchObject({ level: "error", method: "Refresh", protocol: "grpc" });
    });

    it("gives handlers the call context: headers, request id, protocol, peer", async () => {
      const metadata = new grpc.Metadata();
      metadata.set("x-subject", "bob");
      metadata.set("x-request-id", "abc.DEF-123_4");
      const { res } = await call<MessageInitShape<typeof IntrospectResponseSchema>>(
        client,
        "introspect",
        create(IntrospectRequestSchema, { token: "t1" }),
        metadata,
      );
      expect(res).toMatchObject({
        subject: "bob",
        clientId: "grpc",
        jti: "abc.DEF-123_4",
        tokenType: "gatehouse.v1.TokenService/Introspect",
        scopes: ["t1"],
      });
      expect(res?.sessionId).toMatch(/^127\.0\.0\.1:\d+$/);
    });

    it("replaces an unsafe x-request-id with a random one", async () => {
      const metadata = new grpc.Metadata();
      metadata.set("x-request-id", "bad id/with spaces");
      const { res } = await call<{ jti: string }>(
        client,
        "introspect",
        create(IntrospectRequestSchema),
        metadata,
      );
      expect(res?.jti).toMatch(/^[0-9a-f-]{36}$/);
      const long = new grpc.Metadata();
      long.set("x-request-id", "a".repeat(129));
      const second = await call<{ jti: string }>(client, "introspect", create(IntrospectRequestSchema), long);
      expect(second.res?.jti).toMatch(/^[0-9a-f-]{36}$/);
    });

    it.each([
      ["a truncated field", [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]],
      ["an invalid wire type", [0x0f]],
      ["invalid UTF-8 in a string field", [0x0a, 0x02, 0xff, 0xfe]],
    ])("answers INVALID_ARGUMENT / invalid_request to %s", async (_name, bytes) => {
      const raw = new RawClient(`127.0.0.1:${servers.grpcPort}`, grpc.credentials.createInsecure());
      try {
        const { err } = await call(raw, "issue", Buffer.from(bytes));
        expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(errorDetails(err!).info).toMatchObject({ reason: "invalid_request", domain: "gatehouse" });
      } finally {
        raw.close();
      }
    });

    it("rejects a request larger than 64 KiB before decoding it", async () => {
      const { err } = await call(
        client,
        "issue",
        create(IssueRequestSchema, { subject: "x".repeat(70_000) }),
      );
      expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    });
  });

  describe("Connect (fetch, Connect transport)", () => {
    const post = (
      method: string,
      body: string | Uint8Array,
      contentType = "application/json",
      headers = {},
    ) =>
      fetch(`${base}/gatehouse.v1.TokenService/${method}`, {
        method: "POST",
        headers: { "content-type": contentType, ...headers },
        body,
      });

    it("answers JSON for JSON", async () => {
      const res = await post("Introspect", JSON.stringify({ token: "t2" }), "application/json", {
        "x-subject": "carol",
        "x-request-id": "req-json-1",
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        active: true,
        subject: "carol",
        clientId: "connect",
        jti: "req-json-1",
        scopes: ["t2"],
      });
    });

    it("serves GET for NO_SIDE_EFFECTS methods, and only for those", async () => {
      const res = await fetch(`${base}/gatehouse.v1.TokenService/GetJwks?encoding=json&message=%7B%7D`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ keys: [JWK] });
      const issue = await fetch(`${base}/gatehouse.v1.TokenService/Issue?encoding=json&message=%7B%7D`);
      expect(issue.status).toBe(405);
    });

    it("sends a GatehouseError as a Connect error with ErrorInfo", async () => {
      const res = await post("Issue", JSON.stringify({ subject: "alice" }));
      expect(res.status).toBe(403);
      const body = (await res.json()) as ConnectErrorBody;
      expect(body).toMatchObject({
        code: "permission_denied",
        message: "scope x is not allowed for this client",
        details: [
          { type: "google.rpc.ErrorInfo", debug: { reason: "scope_not_allowed", domain: "gatehouse" } },
        ],
      });
      expect(errorInfoOf(body)).toMatchObject({ reason: "scope_not_allowed", metadata: { scope: "x" } });
    });

    it("adds RetryInfo and a retry-after header", async () => {
      const res = await post("IssueServiceToken", "{}");
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("2");
      const body = (await res.json()) as ConnectErrorBody;
      expect(body.details?.map((d) => d.type)).toEqual(["google.rpc.ErrorInfo", "google.rpc.RetryInfo"]);
    });

    it("hides an unexpected error's text", async () => {
      const res = await post("Refresh", "{}");
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(text).not.toContain("hunter2");
      const body = JSON.parse(text) as ConnectErrorBody;
      expect(body).toMatchObject({ code: "internal", message: "internal error" });
      expect(errorInfoOf(body).reason).toBe("internal");
    });

    it.each([
      ["binary garbage", "application/proto", new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])],
      ["bad UTF-8 in a binary string field", "application/proto", new Uint8Array([0x0a, 0x02, 0xff, 0xfe])],
      ["bad JSON", "application/json", new TextEncoder().encode("{not json")],
      ["a JSON value of the wrong type", "application/json", new TextEncoder().encode('{"subject":{}}')],
      [
        "bad UTF-8 in JSON",
        "application/json",
        new Uint8Array([...new TextEncoder().encode('{"subject":"'), 0xff, 0xfe, 0x22, 0x7d]),
      ],
    ])("answers 400 invalid_argument / invalid_request to %s", async (_name, contentType, bytes) => {
      const res = await post("Issue", bytes, contentType, { "x-request-id": "req-bad-1" });
      expect(res.status).toBe(400);
      const body = (await res.json()) as ConnectErrorBody;
      expect(body.code).toBe("invalid_argument");
      expect(errorInfoOf(body)).toMatchObject({
        reason: "invalid_request",
        metadata: { requestId: "req-bad-1" },
      });
    });

    it("rejects a request body larger than 64 KiB", async () => {
      const res = await post("Issue", JSON.stringify({ subject: "x".repeat(70_000) }));
      expect(((await res.json()) as ConnectErrorBody).code).toBe("resource_exhausted");
    });

    it("works with connect-node's Connect transport (binary)", async () => {
      const tokens = createClient(
        TokenService,
        createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: true }),
      );
      const res = await tokens.introspect({ token: "t3" });
      expect(res.clientId).toBe("connect");
      const err = await failure(tokens.issue({ subject: "a" }));
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("scope_not_allowed");
    });
  });

  describe("gRPC-Web (connect-node transport)", () => {
    const tokens = () =>
      createClient(TokenService, createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }));

    it("serves responses and the call context", async () => {
      expect((await tokens().getJwks({})).keys[0]?.kid).toBe("k1");
      const res = await tokens().introspect({ token: "t4" }, { headers: { "x-request-id": "req-web-1" } });
      expect(res).toMatchObject({ clientId: "grpc-web", jti: "req-web-1" });
      expect(res.sessionId).toMatch(/^127\.0\.0\.1:\d+$/);
    });

    it("sends errors with ErrorInfo and RetryInfo", async () => {
      const err = await failure(tokens().issueServiceToken({}));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toBe("slow down");
      expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({
        reason: "rate_limited",
        domain: "gatehouse",
      });
      expect(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(1n);
    });

    it("answers invalid_request to garbage bytes", async () => {
      const res = await fetch(`${base}/gatehouse.v1.TokenService/Issue`, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: frame(0, new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])),
      });
      const trailer = grpcWebTrailer(new Uint8Array(await res.arrayBuffer()));
      expect(trailer.get("grpc-status")).toBe(String(grpc.status.INVALID_ARGUMENT));
      const status = fromBinary(StatusSchema, Buffer.from(trailer.get("grpc-status-details-bin")!, "base64"));
      expect(anyUnpack(status.details[0]!, ErrorInfoSchema)?.reason).toBe("invalid_request");
    });
  });

  describe("HTTP side", () => {
    it("serves extra routes, health and readiness, and a JSON 404 for anything else", async () => {
      expect(await (await fetch(`${base}/.well-known/jwks.json`)).json()).toEqual({ keys: [JWK] });
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const missing = await fetch(`${base}/nope`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: "not_found" });
      expect((await fetch(`${base}/healthz`, { method: "POST" })).status).toBe(405);
    });

    it("counts calls and errors per protocol in Prometheus metrics", async () => {
      const text = await registry.metrics();
      expect(text).toMatch(
        /gatehouse_rpc_duration_seconds_count\{[^}]*service="gatehouse.v1.TokenService",method="GetJwks",protocol="grpc",code="OK"\} [1-9]/,
      );
      expect(text).toMatch(/gatehouse_rpc_duration_seconds_count\{[^}]*protocol="grpc-web"[^}]*\} [1-9]/);
      expect(text).toMatch(/gatehouse_rpc_duration_seconds_count\{[^}]*protocol="connect"[^}]*\} [1-9]/);
      expect(text).toMatch(
        /gatehouse_rpc_errors_total\{[^}]*method="Issue",reason="scope_not_allowed"[^}]*\} [1-9]/,
      );
      expect(text).toMatch(
        /gatehouse_rpc_errors_total\{[^}]*method="Issue",reason="invalid_request"[^}]*\} [1-9]/,
      );
    });
  });
});

describe("graceful shutdown", () => {
  it("finishes calls in flight, refuses new connections, reports draining", async () => {
    const held = gate();
    const servers = await startRpcServers({
      grpc: { host: "127.0.0.1", port: 0 },
      http: { host: "127.0.0.1", port: 0 },
      services: [testService(held)],
      logger: captureLogs().logger,
      drainDelayMs: 1000,
    });
    const base = `http://127.0.0.1:${servers.httpPort}`;
    const client = new TokenClient(`127.0.0.1:${servers.grpcPort}`, grpc.credentials.createInsecure());
    try {
      const revoke = { target: { case: "sessionId", value: "s1" }, reason: "hold" } as const;
      const grpcCall = call<{ sessionsRevoked: number }>(
        client,
        "revoke",
        create(TokenService.method.revoke.input, revoke),
      );
      const connectCall = fetch(`${base}/gatehouse.v1.TokenService/Revoke`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sessionId: "s1", reason: "hold" }),
      });
      await held.holding(2);

      expect(servers.draining()).toBe(false);
      const stopped = servers.shutdown(5000);
      expect(servers.draining()).toBe(true);
      // During the drain delay we still answer, but not ready.
      expect((await fetch(`${base}/readyz`)).status).toBe(503);

      // Then new connections are refused on both ports while the held calls are still running.
      await expect
        .poll(
          () =>
            fetch(`${base}/healthz`).then(
              () => "open",
              () => "refused",
            ),
          { timeout: 5000, interval: 50 },
        )
        .toBe("refused");
      const fresh = new TokenClient(`127.0.0.1:${servers.grpcPort}`, grpc.credentials.createInsecure());
      const late = await call(fresh, "getJwks", create(TokenService.method.getJwks.input));
      fresh.close();
      expect(late.err?.code).toBe(grpc.status.UNAVAILABLE);

      held.release();
      const { err, res } = await grpcCall;
      expect(err).toBeNull();
      expect(res?.sessionsRevoked).toBe(1);
      const answer = await connectCall;
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ sessionsRevoked: 1 });
      await stopped;
    } finally {
      client.close();
      await servers.shutdown(100);
    }
  });
});
