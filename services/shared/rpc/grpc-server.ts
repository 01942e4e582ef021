import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GatehouseError } from "../errors/gatehouse-error.ts";
import { GrpcCode } from "../errors/status-map.ts";
import type { Logger } from "../logging/index.ts";
import { endRpcSpan, rpcSpan } from "../tracing/rpc-spans.ts";
import type { Tracing } from "../tracing/tracing.ts";
import { GrpcCallContext, requestIdFrom } from "./call-context.ts";
import { settleFailure } from "./call-failure.ts";
import { grpcStatusOf } from "./error-wire.ts";
import type { HealthService } from "./grpc-health-service.ts";
import {
  type GrpcStatus,
  type GrpcStreamHandler,
  isGrpcRequest,
  REQUEST_MESSAGE_TIMEOUT_MS,
  readGrpcRequest,
  requestTimeout,
  respondGrpcMessage,
  respondGrpcStatus,
} from "./grpc-wire.ts";
import { NO_RPC_METRICS, type RpcMetrics } from "./rpc-metrics.ts";
import { type BoundMethod, boundMethods, type ServiceRegistration } from "./service-handlers.ts";

export interface GrpcServerOptions {
  services: readonly ServiceRegistration[];
  logger: Logger;
  metrics?: RpcMetrics;
  /** Largest request message accepted; bigger ones fail with RESOURCE_EXHAUSTED. Default 64 KiB. */
  maxReceiveMessageBytes?: number;
  /** A span per call, continuing the caller's `traceparent`; none when omitted. */
  tracing?: Tracing | undefined;
  /** `grpc.health.v1.Health` (Check, List, Watch). */
  health?: HealthService;
  /** More streams by path (server reflection's bidi streams). */
  streams?: ReadonlyMap<string, GrpcStreamHandler>;
  /** Connection lifetimes over the defaults (tests shorten them). */
  connectionLimits?: Partial<ConnectionLimits>;
}

export interface GrpcServer {
  /** Binds `host:port` (port 0: any free port) and resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /**
   * Graceful stop: stops accepting connections, sends GOAWAY on every one, lets calls in flight
   * finish, and cuts whatever is left after `graceMs`.
   */
  shutdown(graceMs: number): Promise<void>;
}

/**
 * How long connections live, and how many. The lifetimes are the grpc-js server's settings before
 * this server replaced it: connections are recycled after ~30 min (±10 %, so clients of several
 * replicas do not reconnect in step), with 30 s for calls in flight, so clients rebalance across
 * replicas as they scale; idle ones close after 10 min; a keepalive ping every minute finds dead
 * peers (20 s to answer).
 *
 * The rest are what grpc-js never had, against callers who hold what they do not use (the HTTP port
 * has the same, from node:http): a connection must open its first stream within 20 s (the HTTP
 * port's first-request limit), a call's request message must arrive within 30 s (its request
 * timeout), and connections beyond `maxConnections` are closed as soon as they are accepted.
 */
export interface ConnectionLimits {
  maxAgeMs: number;
  maxAgeGraceMs: number;
  maxIdleMs: number;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  firstStreamTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
  /** Calls one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
}

const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxAgeMs: 30 * 60_000,
  maxAgeGraceMs: 30_000,
  maxIdleMs: 10 * 60_000,
  keepaliveMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  firstStreamTimeoutMs: 20_000,
  requestTimeoutMs: REQUEST_MESSAGE_TIMEOUT_MS,
  maxConnections: 10_000,
  maxConcurrentStreams: 1000,
};
/**
 * node:http2 refuses new streams (ENHANCE_YOUR_CALM) once a session buffers more than this; its
 * default of 10 MB trips under a burst of 1,000 concurrent calls of up to 64 KiB each.
 */
const MAX_SESSION_MEMORY_MB = 128;

/**
 * The native gRPC server of the token service: unary gRPC straight on node:http2 (grpc-wire.ts),
 * plus health and reflection streams. It replaced a grpc-js server: 0.90–0.93× its service CPU per
 * Refresh and Issue, both loaded at once (bench/compare-revisions.ts, README); grpc-js remains our
 * gRPC client. What it keeps from a gRPC server: deadlines (`grpc-timeout`), gzip and
 * deflate requests, size limits, statuses with google.rpc.Status details, and the connection
 * management above. What it leaves out: TLS (the token service's gRPC port is cleartext; TLS is
 * the mesh's or the load balancer's) and compressed answers.
 */
export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const { logger } = options;
  const metrics = options.metrics ?? NO_RPC_METRICS;
  const maxBytes = options.maxReceiveMessageBytes ?? 64 * 1024;
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.connectionLimits };
  const routes = new Map<string, GrpcStreamHandler>();
  for (const registration of options.services) {
    for (const bound of boundMethods(registration)) {
      const path = `/${registration.service.typeName}/${bound.method.name}`;
      routes.set(
        path,
        unaryRoute(registration.service.typeName, bound, {
          maxBytes,
          requestTimeoutMs: limits.requestTimeoutMs,
          logger,
          metrics,
          tracing: options.tracing,
        }),
      );
    }
  }
  const statusOf = (thrown: unknown): GrpcStatus =>
    grpcStatusOf(GatehouseError.from(thrown), requestIdFrom(undefined));
  for (const [path, handler] of options.health?.routes(statusOf, limits.requestTimeoutMs) ?? []) {
    routes.set(path, handler);
  }
  for (const [path, handler] of options.streams ?? []) routes.set(path, handler);

  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer({
    settings: { maxConcurrentStreams: limits.maxConcurrentStreams },
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
  });
  server.maxConnections = limits.maxConnections;
  server.on("session", (session) => manageSession(session, sessions, limits, logger));
  server.on("stream", (stream, headers) => {
    const route = routes.get(headers[":path"] ?? "");
    if (route !== undefined) {
      route(stream, headers);
      return;
    }
    stream.on("error", () => {});
    if (!isGrpcRequest(headers)) {
      respondGrpcStatus(stream, { code: GrpcCode.UNIMPLEMENTED, message: "expected a gRPC request" }, 415);
    } else {
      respondGrpcStatus(stream, {
        code: GrpcCode.UNIMPLEMENTED,
        message: `the server does not implement the method ${headers[":path"]}`,
      });
    }
  });
  // A client that is not speaking HTTP/2 (or sends garbage) costs one debug line, not a crash.
  server.on("sessionError", (err) => logger.debug({ err, part: "grpc" }, "grpc connection error"));

  let stopped: Promise<void> | undefined;
  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host, port }, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    shutdown(graceMs) {
      stopped ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          for (const session of sessions) session.destroy();
        }, graceMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        for (const session of sessions) session.close();
      });
      return stopped;
    },
  };
}

/** Keepalive, idle timeout and maximum age for one connection. */
function manageSession(
  session: http2.ServerHttp2Session,
  sessions: Set<http2.ServerHttp2Session>,
  limits: ConnectionLimits,
  logger: Logger,
): void {
  sessions.add(session);
  session.on("error", (err) => logger.debug({ err, part: "grpc" }, "grpc connection error"));
  let firstStream: NodeJS.Timeout | undefined = setTimeout(
    () => session.close(),
    limits.firstStreamTimeoutMs,
  );
  firstStream.unref();
  // Streams open now, and when the last one closed: a connection is idle only with none open.
  let active = 0;
  let idleSince = performance.now();
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    if (firstStream !== undefined) {
      clearTimeout(firstStream);
      firstStream = undefined;
    }
    active++;
    stream.once("close", () => {
      if (--active === 0) idleSince = performance.now();
    });
  });

  let pingTimeout: NodeJS.Timeout | undefined;
  let lastPing = performance.now();
  const tick = setInterval(
    () => {
      if (session.closed || session.destroyed) return;
      const now = performance.now();
      if (active === 0 && now - idleSince >= limits.maxIdleMs) {
        session.close();
        return;
      }
      if (pingTimeout !== undefined || now - lastPing < limits.keepaliveMs) return;
      lastPing = now;
      pingTimeout = setTimeout(() => session.destroy(), limits.keepaliveTimeoutMs);
      pingTimeout.unref();
      const sent = session.ping((err) => {
        clearTimeout(pingTimeout);
        pingTimeout = undefined;
        if (err) session.destroy();
      });
      if (!sent) {
        clearTimeout(pingTimeout);
        pingTimeout = undefined;
      }
    },
    Math.min(limits.keepaliveMs, limits.maxIdleMs),
  );
  tick.unref();

  const age = setTimeout(
    () => {
      session.close();
      const grace = setTimeout(() => session.destroy(), limits.maxAgeGraceMs);
      grace.unref();
      session.once("close", () => clearTimeout(grace));
    },
    limits.maxAgeMs * (0.9 + 0.2 * Math.random()),
  );
  age.unref();

  session.once("close", () => {
    clearTimeout(firstStream);
    clearInterval(tick);
    clearTimeout(pingTimeout);
    clearTimeout(age);
    sessions.delete(session);
  });
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n), in milliseconds; undefined if malformed. */
function timeoutMs(header: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(header);
  if (match === null) return undefined;
  const value = Number(match[1]);
  switch (match[2]) {
    case "H":
      return value * 3_600_000;
    case "M":
      return value * 60_000;
    case "S":
      return value * 1000;
    case "m":
      return value;
    case "u":
      return value / 1000;
    default:
      return value / 1_000_000;
  }
}

/**
 * The per-call path, kept lean: no AbortController, no header copy, peer and request id read only
 * if something asks, one metrics observation, a deadline timer only when the caller set one.
 */
function unaryRoute(
  serviceName: string,
  { method, handler }: BoundMethod,
  route: {
    maxBytes: number;
    requestTimeoutMs: number;
    logger: Logger;
    metrics: RpcMetrics;
    tracing: Tracing | undefined;
  },
): GrpcStreamHandler {
  const { maxBytes, requestTimeoutMs, logger, metrics, tracing } = route;
  const methodName = method.name;
  const { input, output } = method;
  return (stream, headers) => {
    const started = performance.now();
    const ctx = new GrpcCallContext(serviceName, methodName, headers, stream);
    ctx.span = rpcSpan(tracing, serviceName, methodName, "grpc", (name) => ctx.header(name));
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const finish = (code: GrpcCode, errorCode?: GatehouseError["code"]): void => {
      settled = true;
      clearTimeout(deadline);
      metrics.record(serviceName, methodName, "grpc", code, (performance.now() - started) / 1000, errorCode);
      endRpcSpan(ctx.span, code, errorCode);
    };
    const fail = (thrown: unknown): void => {
      if (settled) return;
      const err = settleFailure(thrown, ctx, logger);
      const status = grpcStatusOf(err, ctx.requestId);
      respondGrpcStatus(stream, status);
      finish(status.code as GrpcCode, err.code);
    };
    // The caller's deadline, when it comes first, also bounds the wait for the request message.
    let waitForRequest = requestTimeoutMs;
    const timeout = headers["grpc-timeout"];
    if (typeof timeout === "string") {
      const ms = timeoutMs(timeout);
      if (ms === undefined) {
        stream.on("error", () => {});
        respondGrpcStatus(stream, { code: GrpcCode.INTERNAL, message: `invalid grpc-timeout "${timeout}"` });
        finish(GrpcCode.INTERNAL);
        return;
      }
      // The handler's work goes on (it holds no resources a client could pin), its answer is dropped.
      // A deadline beyond what a timer can hold (~24.8 days; grpc-timeout allows 11,400 years) is
      // no deadline: Node would fire such a timer after 1 ms.
      if (ms <= MAX_TIMER_MS) {
        deadline = setTimeout(() => {
          if (settled) return;
          respondGrpcStatus(stream, { code: GrpcCode.DEADLINE_EXCEEDED, message: "deadline exceeded" });
          finish(GrpcCode.DEADLINE_EXCEEDED);
        }, ms);
        if (ms <= requestTimeoutMs) waitForRequest = 0;
      }
    }
    readGrpcRequest(
      stream,
      headers,
      maxBytes,
      (bytes) => {
        let request: ReturnType<typeof fromBinary>;
        try {
          request = fromBinary(input, bytes);
        } catch (cause) {
          fail(new GatehouseError("invalid_request", "the request message could not be decoded", { cause }));
          return;
        }
        let pending: Promise<unknown>;
        try {
          pending = handler(request, ctx);
        } catch (err) {
          pending = Promise.reject(err);
        }
        pending.then((init) => {
          if (settled) return;
          let answer: Uint8Array;
          try {
            answer = toBinary(output, create(output, init as Parameters<typeof create>[1]));
          } catch (err) {
            fail(err);
            return;
          }
          const cancelled = stream.closed;
          respondGrpcMessage(stream, answer);
          finish(cancelled ? GrpcCode.CANCELLED : GrpcCode.OK);
        }, fail);
      },
      (status) => finish(status.code as GrpcCode),
      waitForRequest > 0
        ? requestTimeout(waitForRequest, (err) => grpcStatusOf(err, ctx.requestId))
        : undefined,
    );
  };
}
