import type * as http from "node:http";
import type { Logger } from "../logging/index.ts";
import type { Tracing } from "../tracing/tracing.ts";
import { createCleartextListener } from "./cleartext-listener.ts";
import { createConnectNodeHandler, type NodeHandler } from "./connect-node-handler.ts";
import { createConnectRoutes } from "./connect-routes.ts";
import { type HttpRoutes, routeTable } from "./http-server.ts";
import { listenFailure } from "./listen-failure.ts";
import type { RpcMetrics } from "./rpc-metrics.ts";
import type { ServiceRegistration } from "./service-handlers.ts";

export interface SinglePortServerOptions {
  host: string;
  port: number;
  /** The setting that names the address, for a failure to bind. */
  setting: string;
  services: readonly ServiceRegistration[];
  /** Plain HTTP routes beside the RPCs (`GET /metrics`...). */
  routes?: HttpRoutes;
  logger: Logger;
  metrics?: RpcMetrics;
  /** Largest request message on every protocol. Default 64 KiB. */
  maxMessageBytes?: number;
  /** A span per RPC (see shared/tracing); none when omitted. */
  tracing?: Tracing | undefined;
  /** Open connections (HTTP/1.1 and HTTP/2 together); more are closed as soon as they are accepted. Default: no cap. */
  maxConnections?: number;
}

export interface SinglePortServer {
  readonly port: number;
  /** Stops accepting, lets requests in flight finish, cuts what is left after `graceMs`. */
  close(graceMs: number): Promise<void>;
}

/**
 * Every protocol on one cleartext port: native gRPC over h2c (prior knowledge, as grpc-js clients
 * and the CLI speak it), Connect and gRPC-Web over HTTP/1.1 or HTTP/2, and plain routes. All RPCs
 * go through connect-node, whose gRPC costs several times our own gRPC server's per call
 * (bench/serving-cost.ts), so this is for low-volume planes such as the admin API; the token API
 * has its own gRPC server (grpc-server.ts) on a port of its own.
 */
export async function startSinglePortServer(options: SinglePortServerOptions): Promise<SinglePortServer> {
  const { logger } = options;
  const rpc = createConnectNodeHandler({
    routes: createConnectRoutes(options.services, {
      logger,
      tracing: options.tracing,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    }),
    logger,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    readMaxBytes: options.maxMessageBytes ?? 64 * 1024,
    // connect-node serves gRPC over HTTP/2 only, which is what this port speaks to gRPC clients.
    routerOptions: { grpc: true },
    fallback: routeTable(options.routes ?? {}, logger) as NodeHandler,
  });
  const listener = createCleartextListener({
    http1: { requestTimeout: 30_000, headersTimeout: 15_000, keepAliveTimeout: 65_000 },
    firstRequestTimeoutMs: 20_000,
    // Node's default is 2^32 - 1 streams per connection; an operators' plane needs far fewer.
    http2: { settings: { maxConcurrentStreams: 100 } },
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
    onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => rpc(req, res),
    onHttp2Request: (req, res) => rpc(req, res),
    onClientError: (err) => logger.debug({ err }, "connection error"),
  });
  let port: number;
  try {
    port = await listener.listen(options.host, options.port);
  } catch (err) {
    throw listenFailure(options.setting, options, err);
  }
  return { port, close: (graceMs) => listener.close(graceMs) };
}
