import type { Registry } from "prom-client";
import { GrpcCode } from "../../shared/errors/status-map.ts";
import { type CleartextListener, createCleartextListener } from "../../shared/rpc/cleartext-listener.ts";
import { CHECK_PATH } from "../ext-authz/check.ts";
import { serveGrpcUnary, type UnaryBytesHandler } from "../ext-authz/grpc-unary.ts";
import { grpcStatusHeaders } from "./denial.ts";
import { type Exchange, http1Exchange, http2Exchange, sendJson } from "./exchange.ts";
import { HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, type HealthService } from "./health-service.ts";
import type { Readiness } from "./readiness.ts";

export interface ControlServerOptions {
  /** `envoy.service.auth.v3.Authorization/Check`, as bytes (see ext-authz/check.ts). */
  check: UnaryBytesHandler;
  /** `/authz` (see forward-auth/forward-auth.ts). */
  forwardAuth: (exchange: Exchange) => Promise<void>;
  readiness: () => Readiness;
  /** `grpc.health.v1.Health` (Check and Watch). */
  health: HealthService;
  metrics: Registry;
  logger: { error(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

/**
 * The control port (`:7402`): Envoy ext_authz and grpc.health.v1 over gRPC (HTTP/2 cleartext), and over HTTP/1.1 or
 * HTTP/2 the forward-auth endpoint `/authz`, `/healthz`, `/readyz` and `/metrics` — one port, as the
 * deployment docs and probes expect, because the gRPC side is a single unary method served straight
 * on node:http2 (grpc-js cannot share a port with plain HTTP routes).
 */
export function createControlServer(options: ControlServerOptions): CleartextListener {
  const { logger } = options;
  const onInternalError = (err: unknown) => logger.error({ err }, "ext_authz check failed");

  function route(exchange: Exchange): void {
    const target = exchange.target;
    const q = target.indexOf("?");
    const path = q === -1 ? target : target.slice(0, q);
    const failed = (err: unknown) => {
      logger.error({ err, path }, "control route failed");
      sendJson(exchange, 500, { error: "internal", message: "internal error" });
    };
    switch (path) {
      case "/authz":
        options.forwardAuth(exchange).catch(failed);
        return;
      case "/healthz":
        sendJson(exchange, 200, { status: "ok" });
        return;
      case "/readyz": {
        const readiness = options.readiness();
        sendJson(exchange, readiness.ready ? 200 : 503, readiness);
        return;
      }
      case "/metrics":
        options.metrics.metrics().then((text) => {
          exchange.respond(
            200,
            { "content-type": options.metrics.contentType, "cache-control": "no-store" },
            text,
          );
        }, failed);
        return;
      default:
        sendJson(exchange, 404, { error: "not_found", message: `no route for ${exchange.method} ${path}` });
    }
  }

  return createCleartextListener({
    http1: { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 65_000 },
    firstRequestTimeoutMs: 20_000,
    onRequest: (req, res) => route(http1Exchange(req, res)),
    onStream(stream, headers) {
      if (headers[":path"] === CHECK_PATH) {
        serveGrpcUnary(stream, headers, options.check, { onInternalError });
        return;
      }
      if (headers[":path"] === HEALTH_CHECK_PATH) {
        serveGrpcUnary(stream, headers, options.health.check, { onInternalError });
        return;
      }
      if (headers[":path"] === HEALTH_WATCH_PATH) {
        options.health.watch(stream, headers);
        return;
      }
      if ((headers["content-type"] ?? "").startsWith("application/grpc")) {
        stream.on("error", () => {});
        stream.respond(
          {
            ":status": 200,
            ...grpcStatusHeaders(GrpcCode.UNIMPLEMENTED, `unknown method ${headers[":path"]}`),
          },
          { endStream: true },
        );
        stream.resume();
        return;
      }
      route(http2Exchange(stream, headers));
    },
    onClientError: (err) => logger.debug({ err }, "control connection error"),
  });
}
