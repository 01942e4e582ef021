import type { DescService } from "@bufbuild/protobuf";
import type { Logger } from "../logging/index.ts";
import type { Registry } from "../metrics/index.ts";
import type { Tracing } from "../tracing/tracing.ts";
import type { GrpcHealth } from "./grpc-health.ts";
import { grpcReflectionRoutes } from "./grpc-reflection.ts";
import { createGrpcServer } from "./grpc-server.ts";
import { createHttpServer, type HttpRoutes, sendJson } from "./http-server.ts";
import { listenFailure } from "./listen-failure.ts";
import { createRpcMetrics } from "./rpc-metrics.ts";
import type { ServiceRegistration } from "./service-handlers.ts";
import { type SinglePortServer, startSinglePortServer } from "./single-port-server.ts";

export interface RpcServersOptions {
  /** Native gRPC (HTTP/2 cleartext, see grpc-server.ts). `setting` names the address in a failure to bind. */
  grpc: { host: string; port: number; setting?: string };
  /** Connect, gRPC-Web and the extra routes (HTTP/1.1). `setting` names the address in a failure to bind. */
  http: { host: string; port: number; setting?: string };
  services: readonly ServiceRegistration[];
  /**
   * Plain HTTP routes. `GET /healthz` defaults to 200. `GET /readyz` answers 503 while draining and
   * otherwise defers to the route given here (or 200): readiness checks need not know about drains.
   */
  extraRoutes?: HttpRoutes;
  logger: Logger;
  /** Where `gatehouse_rpc_*` metrics go; none when omitted. */
  metrics?: Registry;
  /** Largest request message on every protocol. Default 64 KiB. */
  maxMessageBytes?: number;
  /**
   * Open connections on each listener; more are closed as soon as they are accepted, so a caller
   * that opens connections and never lets go runs the process out of file descriptors only up to
   * here. Default 10,000.
   */
  maxConnections?: number;
  /**
   * Calls one HTTP/2 connection may have open at once on the native gRPC listener (default 1,000).
   * The admin listener, an operators' plane, takes 100.
   */
  maxConcurrentStreams?: number;
  /**
   * How long shutdown keeps serving (with `/readyz` at 503) before it stops accepting, so load
   * balancers and Kubernetes endpoints stop sending new work first. Default 0 (use a preStop
   * sleep instead, or set a few seconds here).
   */
  drainDelayMs?: number;
  /** A span per RPC on every protocol (see shared/tracing); none when omitted. */
  tracing?: Tracing | undefined;
  /** `grpc.health.v1.Health` on the native gRPC port; NOT_SERVING from the moment shutdown starts. */
  health?: GrpcHealth;
  /** Server reflection (v1, v1alpha) on the native gRPC port for these services; none when omitted. */
  reflection?: readonly DescService[];
  /**
   * A separate listener for operators' services (AdminService) and routes (`/metrics`): every
   * protocol on one port (see single-port-server.ts), so a network policy can fence it off.
   */
  admin?: {
    host: string;
    port: number;
    setting: string;
    services: readonly ServiceRegistration[];
    routes?: HttpRoutes;
  };
}

export interface RpcServers {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** The admin listener's port, when there is one. */
  readonly adminPort: number | undefined;
  /** True from the moment shutdown starts. */
  draining(): boolean;
  /**
   * Graceful stop: marks the servers draining, waits `drainDelayMs`, stops accepting connections,
   * lets calls in flight finish, and cuts whatever is left after `graceMs`. Safe to call twice
   * (same promise).
   */
  shutdown(graceMs: number): Promise<void>;
}

/**
 * Serves one set of handlers over native gRPC on one port and Connect + gRPC-Web + HTTP routes on
 * another; optionally operators' services and routes on a third (every protocol on that one).
 *
 * @example
 * const servers = await startRpcServers({
 *   grpc: { host: "0.0.0.0", port: 7400 },
 *   http: { host: "0.0.0.0", port: 7480 },
 *   services: [defineService(TokenService, tokenHandlers)],
 *   admin: { host: "0.0.0.0", port: 7490, setting: "GATEHOUSE_ADMIN_LISTEN",
 *     services: [defineService(AdminService, adminHandlers)], routes: { "GET /metrics": metricsRoute } },
 *   logger,
 *   metrics: registry,
 * });
 * process.once("SIGTERM", () => void servers.shutdown(20_000));
 */
export async function startRpcServers(options: RpcServersOptions): Promise<RpcServers> {
  const { logger } = options;
  const metrics = options.metrics ? createRpcMetrics(options.metrics) : undefined;
  const maxBytes = options.maxMessageBytes ?? 64 * 1024;
  const maxConnections = options.maxConnections ?? 10_000;
  const drainDelayMs = options.drainDelayMs ?? 0;
  let draining = false;

  const readyz = options.extraRoutes?.["GET /readyz"];
  const extraRoutes: HttpRoutes = {
    "GET /healthz": (_req, res) => sendJson(res, 200, { status: "ok" }),
    ...options.extraRoutes,
    "GET /readyz": (req, res) => {
      if (draining) sendJson(res, 503, { status: "draining" });
      else if (readyz) return readyz(req, res);
      else sendJson(res, 200, { status: "ready" });
    },
  };

  const grpcServer = createGrpcServer({
    services: options.services,
    logger,
    maxReceiveMessageBytes: maxBytes,
    connectionLimits: {
      maxConnections,
      ...(options.maxConcurrentStreams !== undefined
        ? { maxConcurrentStreams: options.maxConcurrentStreams }
        : {}),
    },
    tracing: options.tracing,
    ...(metrics ? { metrics } : {}),
    ...(options.health ? { health: options.health.service } : {}),
    ...(options.reflection ? { streams: await grpcReflectionRoutes(options.reflection, maxBytes) } : {}),
  });
  const web = createHttpServer({
    routes: options.services,
    extraRoutes,
    logger,
    readMaxBytes: maxBytes,
    maxConnections,
    tracing: options.tracing,
    ...(metrics ? { metrics } : {}),
  });

  let grpcPort: number;
  try {
    grpcPort = await grpcServer.listen(options.grpc.host, options.grpc.port);
  } catch (err) {
    throw listenFailure(options.grpc.setting ?? "gRPC listener", options.grpc, err);
  }
  let httpPort: number;
  try {
    ({ port: httpPort } = await web.listen(options.http));
  } catch (err) {
    await grpcServer.shutdown(0);
    throw listenFailure(options.http.setting ?? "HTTP listener", options.http, err);
  }
  let admin: SinglePortServer | undefined;
  if (options.admin) {
    try {
      admin = await startSinglePortServer({
        ...options.admin,
        logger,
        maxMessageBytes: maxBytes,
        maxConnections,
        tracing: options.tracing,
        ...(metrics ? { metrics } : {}),
      });
    } catch (err) {
      await grpcServer.shutdown(0);
      await web.close(0);
      throw err;
    }
  }
  const adminPort = admin?.port;
  const services = options.services.map((s) => s.service.typeName);
  logger.info({ grpcPort, httpPort, adminPort, services }, "rpc servers listening");

  let stopped: Promise<void> | undefined;
  return {
    grpcPort,
    httpPort,
    adminPort,
    draining: () => draining,
    shutdown(graceMs) {
      stopped ??= (async () => {
        draining = true;
        options.health?.drain();
        logger.info({ graceMs, drainDelayMs }, "rpc servers draining");
        if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
        options.health?.stop();
        await Promise.all([grpcServer.shutdown(graceMs), web.close(graceMs), admin?.close(graceMs)]);
        logger.info("rpc servers stopped");
      })();
      return stopped;
    },
  };
}
