import type * as http from "node:http";
import type * as http2 from "node:http2";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextValues,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { GrpcCode } from "../errors/status-map.ts";
import type { Logger } from "../logging/index.ts";
import { requestIdFrom } from "./call-context.ts";
import { repairDecodeFailure } from "./connect-decode-errors.ts";
import { kPeer } from "./connect-routes.ts";
import { NO_RPC_METRICS, type RpcMetrics } from "./rpc-metrics.ts";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

export interface ConnectNodeHandlerOptions {
  /** Usually {@link createConnectRoutes}. */
  routes: (router: ConnectRouter) => void;
  logger: Logger;
  metrics?: RpcMetrics;
  /** Largest request message, after decompression; bigger fails with RESOURCE_EXHAUSTED. 64 KiB. */
  readMaxBytes?: number;
  /**
   * connect's router options over our defaults: Connect and gRPC-Web on, gRPC off (connect-node can
   * only serve it over HTTP/2, and native gRPC has its own listener, grpc-server.ts), 4 MiB responses.
   */
  routerOptions?: ConnectRouterOptions;
  /** Requests whose path names no RPC. Default: empty 404. */
  fallback?: NodeHandler;
}

/**
 * A Node request handler (http or http2) serving Connect (JSON and binary, including GET for
 * NO_SIDE_EFFECTS methods) and gRPC-Web. It is connect-node's `connectNodeAdapter` plus three
 * things that adapter cannot do: the peer address reaches handlers, request-decoding failures
 * answer `invalid_request` (see connect-decode-errors.ts), and failures are logged with pino
 * instead of `console.error`.
 */
export function createConnectNodeHandler(options: ConnectNodeHandlerOptions): NodeHandler {
  const router = createConnectRouter({
    grpc: false,
    grpcWeb: true,
    connect: true,
    acceptCompression: [compressionGzip, compressionBrotli],
    readMaxBytes: options.readMaxBytes ?? 64 * 1024,
    writeMaxBytes: 4 * 1024 * 1024,
    requireConnectProtocolHeader: false,
    // connect decodes JSON text with a lenient TextDecoder (bad UTF-8 becomes U+FFFD, silently).
    // A fatal one makes it INVALID_ARGUMENT like bad UTF-8 in binary messages. (Read by connect's
    // JSON serialization, though its type does not list it.) Unknown fields are refused too: a
    // misspelt field in an admin call must fail, not run the call as if it were absent.
    jsonOptions: {
      textDecoder: new TextDecoder("utf-8", { fatal: true }),
      ignoreUnknownFields: false,
    } as ConnectRouterOptions["jsonOptions"],
    ...options.routerOptions,
  });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);
  const metrics = options.metrics ?? NO_RPC_METRICS;
  const fallback = options.fallback ?? notFound;
  const { logger } = options;

  return (req, res) => {
    const url = req.url ?? "";
    const query = url.indexOf("?");
    const handler = paths.get(query === -1 ? url : url.slice(0, query));
    if (handler === undefined) {
      fallback(req, res);
      return;
    }
    const started = performance.now();
    const values = createContextValues().set(kPeer, () => peerOf(req));
    // connect-node's request and response types patch Node's own; the objects are the same.
    const uReq = universalRequestFromNodeRequest(req as never, res as never, undefined, values);
    handler(uReq)
      .then((uRes) =>
        repairDecodeFailure(uRes, (protocol) => {
          const seconds = (performance.now() - started) / 1000;
          const { service, method } = handler;
          metrics.record(
            service.typeName,
            method.name,
            protocol,
            GrpcCode.INVALID_ARGUMENT,
            seconds,
            "invalid_request",
          );
          return requestIdFrom(firstHeader(req, "x-request-id"));
        }),
      )
      .then((uRes) => universalResponseToNodeResponse(uRes, res as never))
      .catch((reason: unknown) => {
        // The client went away mid-call: nothing to answer, nothing to fix.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        logger.error(
          { err: reason, service: handler.service.typeName, method: handler.method.name },
          "connect handler failed",
        );
      });
  };
}

function peerOf(req: NodeRequest): string | undefined {
  const { remoteAddress, remotePort } = req.socket;
  return remoteAddress === undefined ? undefined : `${remoteAddress}:${remotePort}`;
}

function firstHeader(req: NodeRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function notFound(_req: NodeRequest, res: NodeResponse): void {
  res.writeHead(404);
  res.end();
}
