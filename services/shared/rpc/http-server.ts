import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "../logging/index.ts";
import type { Tracing } from "../tracing/tracing.ts";
import { createConnectNodeHandler } from "./connect-node-handler.ts";
import { createConnectRoutes } from "./connect-routes.ts";
import type { RpcMetrics } from "./rpc-metrics.ts";
import type { ServiceRegistration } from "./service-handlers.ts";

/** A plain HTTP endpoint beside the RPCs (`/healthz`, `/metrics`, `/.well-known/jwks.json`...). */
export type HttpRouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

/** Keyed by "METHOD /path" (exact path, no query). A GET route also answers HEAD. */
export type HttpRoutes = Record<`${"GET" | "POST"} /${string}`, HttpRouteHandler>;

export interface HttpServerOptions {
  /** The RPCs to serve: registrations, or a connect-node routes function. */
  routes?: readonly ServiceRegistration[] | ((router: ConnectRouter) => void);
  extraRoutes?: HttpRoutes;
  logger: Logger;
  metrics?: RpcMetrics;
  /** Largest request message. Default 64 KiB. */
  readMaxBytes?: number;
  /** A span per RPC (not per plain route), continuing the caller's `traceparent`. */
  tracing?: Tracing | undefined;
  /** Open connections; more are closed as soon as they are accepted. Default: no cap. */
  maxConnections?: number;
}

export interface HttpServer {
  readonly server: http.Server;
  /** Starts listening; port 0 picks a free port. */
  listen(address: { host: string; port: number }): Promise<{ port: number }>;
  /**
   * Stops accepting connections and lets requests in flight finish (their connections close
   * after the response); after `graceMs` the remaining connections are cut.
   */
  close(graceMs: number): Promise<void>;
}

/**
 * An HTTP/1.1 server for Connect (JSON and binary, GET for read-only methods), gRPC-Web and a few
 * plain GET routes; anything else gets a JSON 404.
 *
 * @example
 * const web = createHttpServer({
 *   routes: [defineService(TokenService, handlers)],
 *   extraRoutes: { "GET /healthz": (_req, res) => void res.end("ok") },
 *   logger,
 * });
 * const { port } = await web.listen({ host: "0.0.0.0", port: 7480 });
 */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { logger } = options;
  const serveExtra = routeTable(options.extraRoutes ?? {}, logger);
  const routes =
    typeof options.routes === "function"
      ? options.routes
      : createConnectRoutes(options.routes ?? [], {
          logger,
          tracing: options.tracing,
          ...(options.metrics ? { metrics: options.metrics } : {}),
        });
  const rpc = createConnectNodeHandler({
    routes,
    logger,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.readMaxBytes ? { readMaxBytes: options.readMaxBytes } : {}),
    fallback: (req, res) => serveExtra(req as http.IncomingMessage, res as http.ServerResponse),
  });

  let closing = false;
  // Responses not yet finished, so that a shutdown can tell them to close their connections.
  const inFlight = new Set<http.ServerResponse>();
  const server = http.createServer(
    {
      // Slow or stuck clients must not hold connections forever.
      requestTimeout: 30_000,
      headersTimeout: 15_000,
      // Longer than the usual load balancer idle timeout (60 s), so the balancer closes first.
      keepAliveTimeout: 65_000,
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => {
      // While shutting down, finish this request but do not keep its connection.
      if (closing) res.setHeader("connection", "close");
      else {
        inFlight.add(res);
        res.once("close", () => inFlight.delete(res));
      }
      rpc(req, res);
    },
  );

  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;

  return {
    server,
    listen({ host, port }) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve({ port: (server.address() as AddressInfo).port });
        });
      });
    },
    async close(graceMs) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      for (const res of inFlight) {
        // A keep-alive connection would otherwise linger (up to keepAliveTimeout) after its response.
        if (!res.headersSent) res.setHeader("connection", "close");
        else res.once("close", () => setImmediate(() => server.closeIdleConnections()));
      }
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      try {
        await closed;
      } finally {
        clearTimeout(force);
      }
    },
  };
}

/**
 * The plain routes as one request handler: a known path with another method gets 405 and
 * `allow`, an unknown one a JSON 404, and a route that throws a JSON 500 (logged).
 */
export function routeTable(
  routes: HttpRoutes,
  logger: Logger,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const extraRoutes = new Map<string, HttpRouteHandler>(Object.entries(routes));
  return function serveExtra(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);
    const method = req.method === "HEAD" ? "GET" : req.method;
    const route = extraRoutes.get(`${method} ${path}`);
    if (route === undefined) {
      const known = ["GET", "POST"].filter((m) => extraRoutes.has(`${m} ${path}`));
      if (known.length > 0) {
        res.setHeader("allow", known.join(", "));
        sendJson(res, 405, { code: "invalid_request", message: `${req.method} not allowed on ${path}` });
      } else sendJson(res, 404, { code: "not_found", message: `no route for ${req.method} ${path}` });
      return;
    }
    const failed = (err: unknown) => {
      logger.error({ err, path }, "http route failed");
      if (!res.headersSent) sendJson(res, 500, { code: "internal", message: "internal error" });
      else res.destroy();
    };
    try {
      const done = route(req, res);
      if (done instanceof Promise) done.catch(failed);
    } catch (err) {
      failed(err);
    }
  };
}

/** Writes a small JSON answer (the Connect error shape, for errors). */
export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}
