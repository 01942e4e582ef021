import type { Registry } from "prom-client";
import { GrpcCode } from "../../shared/errors/status-map.ts";
import { type CleartextListener, createCleartextListener } from "../../shared/rpc/cleartext-listener.ts";
import type { HealthService } from "../../shared/rpc/grpc-health-service.ts";
import { respondGrpcStatus, serveGrpcUnary, type UnaryBytesHandler } from "../../shared/rpc/grpc-wire.ts";
import { CHECK_PATH } from "../ext-authz/check.ts";
import { grpcDenialStatus } from "./denial.ts";
import { type Exchange, http1Exchange, http2Exchange, sendJson } from "./exchange.ts";
import type { Readiness } from "./readiness.ts";

export interface ControlServerOptions {
  /** `envoy.service.auth.v3.Authorization/Check`, as bytes (see ext-authz/check.ts). */
  check: UnaryBytesHandler;
  /** `/authz` (see forward-auth/forward-auth.ts). */
  forwardAuth: (exchange: Exchange) => Promise<void>;
  readiness: () => Readiness;
  /** `grpc.health.v1.Health` (Check, List and Watch). */
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
  const checkFailed = (err: unknown) =>
    grpcDenialStatus(err, (bug) => logger.error({ err: bug }, "ext_authz check failed"));
  const healthRoutes = options.health.routes((err) =>
    grpcDenialStatus(err, (bug) => logger.error({ err: bug }, "health check failed")),
  );

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
      const path = headers[":path"] ?? "";
      if (path === CHECK_PATH) {
        serveGrpcUnary(stream, headers, options.check, checkFailed);
        return;
      }
      const health = healthRoutes.get(path);
      if (health !== undefined) {
        health(stream, headers);
        return;
      }
      if ((headers["content-type"] ?? "").startsWith("application/grpc")) {
        stream.on("error", () => {});
        respondGrpcStatus(stream, { code: GrpcCode.UNIMPLEMENTED, message: `unknown method ${path}` });
        return;
      }
      route(http2Exchange(stream, headers));
    },
    onClientError: (err) => logger.debug({ err }, "control connection error"),
  });
}
