// The token service's native gRPC server (services/shared/rpc/grpc-server.ts) at the transport
// level: deadlines, compressed requests, framing it must refuse, unknown methods, cancellation and
// connection lifetimes. Called with a stock grpc-js client where one can say it, and with a raw
// node:http2 client (or a bare socket) where the point is a request no library would send.
import * as http2 from "node:http2";
import * as net from "node:net";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IntrospectRequestSchema,
  RevokeRequestSchema,
  TokenService,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { ErrorInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../services/gen/proto/google/rpc/status_pb.ts";
import { HealthCheckRequestSchema } from "../../services/gen/proto/grpc/health/v1/health_pb.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createMetricsRegistry } from "../../services/shared/metrics/index.ts";
import { createHealthService } from "../../services/shared/rpc/grpc-health-service.ts";
import { type ConnectionLimits, createGrpcServer } from "../../services/shared/rpc/grpc-server.ts";
import { grpcMessageFrame } from "../../services/shared/rpc/grpc-wire.ts";
import { createRpcMetrics, defineService, grpcServiceDefinition } from "../../services/shared/rpc/index.ts";
import { openGrpcStream, rawGrpcCall } from "../support/raw-grpc-call.ts";

const logger = createLogger({ level: "silent", component: "grpc-server-test" });
let introspections = 0;

/** Introspect echoes the token; Revoke sleeps for `reason` milliseconds. */
const service = defineService(TokenService, {
  async introspect(req) {
    introspections += 1;
    return { active: true, subject: req.token };
  },
  async revoke(req) {
    await new Promise((resolve) => setTimeout(resolve, Number(req.reason)));
    return { sessionsRevoked: 1 };
  },
  getJwks: notHere,
  issue: notHere,
  issueServiceToken: notHere,
  refresh: notHere,
  listSessions: notHere,
  exchange: notHere,
});

async function notHere(): Promise<never> {
  throw new Error("not used by this test");
}

const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(TokenService), "TokenService");
type Unary = (
  req: unknown,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: grpc.requestCallback<unknown>,
) => grpc.ClientUnaryCall;

function unary(client: grpc.Client, method: string, req: unknown, opts: grpc.CallOptions = {}) {
  return new Promise<{ err: grpc.ServiceError | null; res: unknown }>((resolve) => {
    (client as unknown as Record<string, Unary>)[method]!.call(
      client,
      req,
      new grpc.Metadata(),
      opts,
      (err, res) => resolve({ err, res }),
    );
  });
}

async function serve(limits?: Partial<ConnectionLimits>) {
  const registry = createMetricsRegistry("grpc-server-test", { defaultMetrics: false });
  const server = createGrpcServer({
    services: [service],
    logger,
    metrics: createRpcMetrics(registry),
    health: createHealthService({ services: [], serving: () => true }),
    ...(limits ? { connectionLimits: limits } : {}),
  });
  const port = await server.listen("127.0.0.1", 0);
  /** How many calls of `method` ended with `code` (gRPC code name), from the duration histogram. */
  const counted = async (method: string, code: string): Promise<number> => {
    const metric = await registry.getSingleMetric("gatehouse_rpc_duration_seconds")!.get();
    return metric.values
      .filter(
        (v) =>
          (v as { metricName?: string }).metricName?.endsWith("_count") &&
          v.labels.method === method &&
          v.labels.code === code,
      )
      .reduce((n, v) => n + v.value, 0);
  };
  return { server, port, counted };
}

const introspect = (token: string) =>
  toBinary(IntrospectRequestSchema, create(IntrospectRequestSchema, { token }));
const INTROSPECT = "/gatehouse.v1.TokenService/Introspect";
/** A Revoke request the test service answers after `ms`. */
const sleep = (ms: number) =>
  grpcMessageFrame(toBinary(RevokeRequestSchema, create(RevokeRequestSchema, { reason: String(ms) })));
const REVOKE = "/gatehouse.v1.TokenService/Revoke";

/** A frame with the compressed flag set around already-compressed bytes. */
function compressedFrame(bytes: Buffer): Buffer {
  const frame = Buffer.alloc(5 + bytes.length);
  frame[0] = 1;
  frame.writeUInt32BE(bytes.length, 1);
  bytes.copy(frame, 5);
  return frame;
}

describe("native gRPC server: calls", () => {
  let s: Awaited<ReturnType<typeof serve>>;
  let client: grpc.Client;

  beforeAll(async () => {
    s = await serve();
    client = new Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await s?.server.shutdown(1000);
  });
  /** A good Introspect request as raw HTTP/2, with these headers over the usual ones. */
  const introspectWith = (headers: Record<string, string>) =>
    rawGrpcCall(s.port, INTROSPECT, headers, grpcMessageFrame(introspect("t")));

  it("ends a call whose deadline passes with DEADLINE_EXCEEDED, from the server, and counts it", async () => {
    const before = await s.counted("Revoke", "DEADLINE_EXCEEDED");
    const body = sleep(600);
    const answer = await rawGrpcCall(s.port, REVOKE, { "grpc-timeout": "100m" }, body);
    expect(answer.status).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(answer.ms).toBeLessThan(500);
    expect(await s.counted("Revoke", "DEADLINE_EXCEEDED")).toBe(before + 1);
    // A deadline the handler meets changes nothing, nor does one too far off for a timer to hold
    // (Node fires a timer of more than 2^31-1 ms after 1 ms).
    for (const far of ["5S", "99999999H", "2147484S"]) {
      const met = await rawGrpcCall(s.port, REVOKE, { "grpc-timeout": far }, body);
      expect(met.status, far).toBe(grpc.status.OK);
    }
  });

  it("refuses a malformed grpc-timeout with INTERNAL before the handler runs", async () => {
    const before = introspections;
    for (const timeout of ["100", "1x", "123456789S", "-5m"]) {
      const answer = await introspectWith({ "grpc-timeout": timeout });
      expect(answer.status, timeout).toBe(grpc.status.INTERNAL);
    }
    expect(introspections).toBe(before);
  });

  it.each([
    ["deflate", 1],
    ["gzip", 2],
  ])("serves requests a grpc-js client compresses with %s", async (_name, algorithm) => {
    const compressing = new Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure(), {
      "grpc.default_compression_algorithm": algorithm,
    });
    try {
      const token = "t".repeat(2000);
      const { err, res } = await unary(compressing, "introspect", create(IntrospectRequestSchema, { token }));
      expect(err).toBeNull();
      expect(res).toMatchObject({ active: true, subject: token });
    } finally {
      compressing.close();
    }
  });

  it("answers an encoding it does not take with UNIMPLEMENTED and the ones it does", async () => {
    const answer = await rawGrpcCall(
      s.port,
      INTROSPECT,
      { "grpc-encoding": "snappy" },
      compressedFrame(Buffer.from("not snappy")),
    );
    expect(answer.status).toBe(grpc.status.UNIMPLEMENTED);
    expect(answer.headers["grpc-accept-encoding"]).toBe("identity,deflate,gzip");
  });

  it("refuses a gzip bomb with RESOURCE_EXHAUSTED, never inflating past the limit", async () => {
    const before = introspections;
    const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const answer = await rawGrpcCall(s.port, INTROSPECT, { "grpc-encoding": "gzip" }, compressedFrame(bomb));
    expect(answer.status).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(introspections).toBe(before);
  });

  it("refuses a compressed message in a request that declares no encoding, and bytes that do not inflate", async () => {
    const undeclared = await rawGrpcCall(s.port, INTROSPECT, {}, compressedFrame(gzipSync(introspect("t"))));
    expect(undeclared.status).toBe(grpc.status.INTERNAL);
    const garbage = await rawGrpcCall(
      s.port,
      INTROSPECT,
      { "grpc-encoding": "gzip" },
      compressedFrame(Buffer.from("nope")),
    );
    expect(garbage.status).toBe(grpc.status.INTERNAL);
    const flagTwo = compressedFrame(gzipSync(introspect("t")));
    flagTwo[0] = 2;
    const badFlag = await rawGrpcCall(s.port, INTROSPECT, { "grpc-encoding": "gzip" }, flagTwo);
    expect(badFlag.status).toBe(grpc.status.INTERNAL);
    expect(decodeURIComponent(String(badFlag.headers["grpc-message"]))).toBe(
      "message flag 2 is neither 0 nor 1",
    );
  });

  it("refuses a unary request with no message, two messages, or a cut-off one", async () => {
    const one = grpcMessageFrame(introspect("t"));
    for (const body of [Buffer.alloc(0), Buffer.concat([one, one]), one.subarray(0, one.length - 1)]) {
      const answer = await rawGrpcCall(s.port, INTROSPECT, {}, body);
      expect(answer.status).toBe(grpc.status.INVALID_ARGUMENT);
    }
  });

  it("answers an unknown method UNIMPLEMENTED, and a request that is not gRPC in protobuf with HTTP 415", async () => {
    const unknown = await rawGrpcCall(
      s.port,
      "/gatehouse.v1.TokenService/Nope",
      {},
      grpcMessageFrame(introspect("t")),
    );
    expect(unknown.status).toBe(grpc.status.UNIMPLEMENTED);
    expect(unknown.headers[":status"]).toBe(200);
    const before = introspections;
    const refusedTypes = [
      "application/json",
      "application/grpc-web",
      "application/grpc+json",
      "application/grpcx",
    ];
    for (const contentType of refusedTypes) {
      const refused = await introspectWith({ "content-type": contentType });
      expect(refused.headers[":status"], contentType).toBe(415);
    }
    expect(introspections).toBe(before);
    for (const contentType of ["application/grpc+proto", "application/grpc; charset=utf-8"]) {
      const served = await introspectWith({ "content-type": contentType });
      expect(served.status, contentType).toBe(grpc.status.OK);
    }
  });

  it("counts a call the client cancels as CANCELLED", async () => {
    const before = await s.counted("Revoke", "CANCELLED");
    const call = (client as unknown as Record<string, Unary>).revoke!.call(
      client,
      create(RevokeRequestSchema, { reason: "300" }),
      new grpc.Metadata(),
      {},
      () => {},
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    call.cancel();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await s.counted("Revoke", "CANCELLED")).toBe(before + 1);
  });
});

describe("native gRPC server: connection lifetimes", () => {
  it("recycles a connection at its maximum age: GOAWAY, and the call in flight still finishes", async () => {
    const s = await serve({ maxAgeMs: 300, maxAgeGraceMs: 5000 });
    const session = http2.connect(`http://127.0.0.1:${s.port}`);
    try {
      const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
      const answer = rawGrpcCall(session, REVOKE, {}, sleep(600));
      await goaway;
      expect((await answer).status).toBe(grpc.status.OK);
    } finally {
      session.destroy();
      await s.server.shutdown(1000);
    }
  });

  it("closes a connection idle for longer than the idle limit, and not one in use", async () => {
    const s = await serve({ maxIdleMs: 200 });
    const session = http2.connect(`http://127.0.0.1:${s.port}`);
    try {
      const events: string[] = [];
      session.on("goaway", () => events.push("goaway"));
      const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
      // A call that lasts three idle limits keeps its connection open all along.
      const answer = await rawGrpcCall(session, REVOKE, {}, sleep(700));
      events.push(`grpc-status ${answer.status}`);
      const answered = performance.now();
      expect(events).toEqual(["grpc-status 0"]);
      // Then, idle, it is closed.
      await closed;
      expect(events[0]).toBe("grpc-status 0");
      expect(events.slice(1)).toContain("goaway");
      expect(performance.now() - answered).toBeLessThan(3000);
    } finally {
      session.destroy();
      await s.server.shutdown(1000);
    }
  });

  it("pings every connection, and drops a peer that stops answering", async () => {
    const s = await serve({ keepaliveMs: 100, keepaliveTimeoutMs: 200 });
    try {
      // A real HTTP/2 client answers the pings and keeps its connection.
      const live = http2.connect(`http://127.0.0.1:${s.port}`);
      let pings = 0;
      live.on("ping", () => (pings += 1));
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(pings).toBeGreaterThanOrEqual(3);
      expect(live.closed).toBe(false);
      live.close();
      // A peer that opens the connection and then reads nothing, answers nothing.
      const mute = net.connect(s.port, "127.0.0.1");
      mute.resume();
      await new Promise((resolve) => mute.once("connect", resolve));
      mute.write(
        Buffer.concat([
          Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
          Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
        ]),
      );
      const started = performance.now();
      await new Promise((resolve) => mute.once("close", resolve));
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      await s.server.shutdown(1000);
    }
  });

  it("shuts down with calls in flight: they finish, new connections are refused", async () => {
    const s = await serve();
    const client = new Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    try {
      const inFlight = unary(client, "revoke", create(RevokeRequestSchema, { reason: "300" }));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const stopped = s.server.shutdown(5000);
      expect((await inFlight).err).toBeNull();
      await stopped;
      const refused = await new Promise<boolean>((resolve) => {
        const socket = net.connect(s.port, "127.0.0.1");
        socket.once("error", () => resolve(true));
        socket.once("connect", () => {
          socket.destroy();
          resolve(false);
        });
      });
      expect(refused).toBe(true);
    } finally {
      client.close();
    }
  });
});

/** The ErrorInfo reason in a trailers-only answer's `grpc-status-details-bin`. */
function reasonOf(headers: http2.IncomingHttpHeaders): string | undefined {
  const bin = headers["grpc-status-details-bin"];
  if (typeof bin !== "string") return undefined;
  const info = fromBinary(StatusSchema, Buffer.from(bin, "base64")).details.find((d) =>
    d.typeUrl.endsWith("google.rpc.ErrorInfo"),
  );
  return info ? fromBinary(ErrorInfoSchema, info.value).reason : undefined;
}

/**
 * A call that sends `sent` of its request and then neither the rest nor its end of stream, as a
 * client holding streams open would: resolves when the server ends it.
 */
function heldCall(
  session: http2.ClientHttp2Session,
  path: string,
  sent: Buffer,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<{ status: number; reason: string | undefined; ms: number; reset: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const stream = openGrpcStream(session, path, headers);
    let answer: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (answer = h));
    stream.on("error", reject);
    stream.resume();
    stream.on("close", () =>
      resolve({
        status: Number(answer["grpc-status"]),
        reason: reasonOf(answer),
        ms: performance.now() - started,
        reset: stream.rstCode ?? -1,
      }),
    );
    if (sent.length > 0) stream.write(sent);
  });
}

describe("native gRPC server: callers who hold what they do not use", () => {
  it("ends a call whose request message has not arrived within the request timeout: DEADLINE_EXCEEDED, request_timeout", async () => {
    const s = await serve({ requestTimeoutMs: 300 });
    const session = http2.connect(`http://127.0.0.1:${s.port}`);
    try {
      const frame = grpcMessageFrame(introspect("abc"));
      const before = await s.counted("Introspect", "DEADLINE_EXCEEDED");
      const [nothing, prefixOnly, allButOne, longDeadline] = await Promise.all([
        heldCall(session, INTROSPECT, Buffer.alloc(0)),
        heldCall(session, INTROSPECT, frame.subarray(0, 3)),
        heldCall(session, INTROSPECT, frame.subarray(0, frame.length - 1)),
        // A deadline later than the request timeout does not extend it.
        heldCall(session, INTROSPECT, frame.subarray(0, 3), { "grpc-timeout": "10S" }),
      ]);
      for (const held of [nothing, prefixOnly, allButOne, longDeadline]) {
        expect(held.status).toBe(grpc.status.DEADLINE_EXCEEDED);
        expect(held.reason).toBe("request_timeout");
        expect(held.ms).toBeGreaterThanOrEqual(250);
        expect(held.ms).toBeLessThan(3000);
      }
      expect(await s.counted("Introspect", "DEADLINE_EXCEEDED")).toBe(before + 4);
      // A refusal before the body is read frees the stream as soon as it is answered.
      const [unknown, notGrpc] = await Promise.all([
        heldCall(session, "/gatehouse.v1.TokenService/Nope", frame.subarray(0, 3)),
        heldCall(session, INTROSPECT, frame.subarray(0, 3), { "content-type": "application/grpc-web" }),
      ]);
      expect(unknown.status).toBe(grpc.status.UNIMPLEMENTED);
      expect(notGrpc.status).toBe(grpc.status.UNIMPLEMENTED);
      for (const held of [nothing, unknown, notGrpc])
        expect(held.reset).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(Math.max(unknown.ms, notGrpc.ms)).toBeLessThan(250);
      // The server's answer ended those streams; the connection goes on serving.
      const after = await rawGrpcCall(session, INTROSPECT, {}, frame);
      expect(after.status).toBe(grpc.status.OK);
    } finally {
      session.destroy();
      await s.server.shutdown(1000);
    }
  });

  it("takes a request that arrives slowly but within the request timeout, and a caller's shorter deadline ends one first", async () => {
    const s = await serve({ requestTimeoutMs: 600 });
    const session = http2.connect(`http://127.0.0.1:${s.port}`);
    try {
      const frame = grpcMessageFrame(introspect("slow"));
      const stream = openGrpcStream(session, INTROSPECT);
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
      stream.resume();
      stream.write(frame.subarray(0, 4));
      await new Promise((resolve) => setTimeout(resolve, 200));
      stream.write(frame.subarray(4, 8));
      await new Promise((resolve) => setTimeout(resolve, 200));
      stream.end(frame.subarray(8));
      expect((await trailers)["grpc-status"]).toBe("0");

      const deadline = await heldCall(session, INTROSPECT, Buffer.alloc(0), { "grpc-timeout": "150m" });
      expect(deadline.status).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(deadline.reason).toBeUndefined();
      expect(deadline.ms).toBeLessThan(500);
    } finally {
      session.destroy();
      await s.server.shutdown(1000);
    }
  });

  it("holds grpc.health.v1 Check and Watch to the same request timeout", async () => {
    const s = await serve({ requestTimeoutMs: 300 });
    const session = http2.connect(`http://127.0.0.1:${s.port}`);
    try {
      const frame = grpcMessageFrame(
        toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {})),
      );
      const [check, watch] = await Promise.all([
        heldCall(session, "/grpc.health.v1.Health/Check", frame.subarray(0, 2)),
        heldCall(session, "/grpc.health.v1.Health/Watch", Buffer.alloc(0)),
      ]);
      for (const held of [check, watch]) {
        expect(held.status).toBe(grpc.status.DEADLINE_EXCEEDED);
        expect(held.reason).toBe("request_timeout");
        expect(held.ms).toBeGreaterThanOrEqual(250);
      }
      expect((await rawGrpcCall(session, "/grpc.health.v1.Health/Check", {}, frame)).status).toBe(
        grpc.status.OK,
      );
    } finally {
      session.destroy();
      await s.server.shutdown(1000);
    }
  });

  it("closes a connection that opens no stream within the first-stream limit, and keeps one that did", async () => {
    const s = await serve({ firstStreamTimeoutMs: 300 });
    try {
      const started = performance.now();
      // A socket that never says anything, and an HTTP/2 client that connects and never asks.
      const silent = net.connect(s.port, "127.0.0.1");
      silent.resume();
      const silentClosed = new Promise<number>((resolve) =>
        silent.once("close", () => resolve(performance.now() - started)),
      );
      const mute = http2.connect(`http://127.0.0.1:${s.port}`);
      const muteGoaway = new Promise<void>((resolve) => mute.once("goaway", () => resolve()));
      const muteClosed = new Promise<number>((resolve) =>
        mute.once("close", () => resolve(performance.now() - started)),
      );
      const used = http2.connect(`http://127.0.0.1:${s.port}`);
      expect((await rawGrpcCall(used, INTROSPECT, {}, grpcMessageFrame(introspect("x")))).status).toBe(0);

      for (const ms of [await silentClosed, await muteClosed]) {
        expect(ms).toBeGreaterThanOrEqual(250);
        expect(ms).toBeLessThan(3000);
      }
      await muteGoaway;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(used.closed || used.destroyed).toBe(false);
      expect((await rawGrpcCall(used, INTROSPECT, {}, grpcMessageFrame(introspect("y")))).status).toBe(0);
      used.close();
    } finally {
      await s.server.shutdown(1000);
    }
  });

  it("closes connections beyond maxConnections as soon as they are accepted, while the open ones keep working", async () => {
    const s = await serve({ maxConnections: 2 });
    const frame = grpcMessageFrame(introspect("x"));
    const first = http2.connect(`http://127.0.0.1:${s.port}`);
    const second = http2.connect(`http://127.0.0.1:${s.port}`);
    try {
      expect((await rawGrpcCall(first, INTROSPECT, {}, frame)).status).toBe(0);
      expect((await rawGrpcCall(second, INTROSPECT, {}, frame)).status).toBe(0);

      const third = net.connect(s.port, "127.0.0.1");
      third.resume();
      third.on("error", () => {});
      const started = performance.now();
      await new Promise((resolve) => third.once("close", resolve));
      expect(performance.now() - started).toBeLessThan(1000);
      // A stock client on a connection over the cap gets UNAVAILABLE, not a hang.
      const client = new Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
      try {
        const refused = await unary(client, "introspect", create(IntrospectRequestSchema, { token: "z" }), {
          deadline: Date.now() + 2000,
        });
        expect(refused.err?.code).toBe(grpc.status.UNAVAILABLE);
      } finally {
        client.close();
      }

      expect((await rawGrpcCall(first, INTROSPECT, {}, frame)).status).toBe(0);
      second.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const fourth = http2.connect(`http://127.0.0.1:${s.port}`);
      expect((await rawGrpcCall(fourth, INTROSPECT, {}, frame)).status).toBe(0);
      fourth.close();
    } finally {
      first.destroy();
      second.destroy();
      await s.server.shutdown(1000);
    }
  });
});
