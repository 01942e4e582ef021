import type { DescMessage, Message, MessageInitShape } from "@bufbuild/protobuf";
import { type ConnectRouter, createContextKey, type HandlerContext } from "@connectrpc/connect";
import { GrpcCode, grpcCodeOf } from "../errors/status-map.ts";
import type { Logger } from "../logging/index.ts";
import { endRpcSpan, rpcSpan } from "../tracing/rpc-spans.ts";
import type { Tracing } from "../tracing/tracing.ts";
import { HeadersCallContext, type RpcProtocol } from "./call-context.ts";
import { settleFailure } from "./call-failure.ts";
import { toConnectError } from "./error-wire.ts";
import { NO_RPC_METRICS, type RpcMetrics } from "./rpc-metrics.ts";
import { type BoundMethod, boundMethods, type ServiceRegistration } from "./service-handlers.ts";

export interface ConnectRoutesOptions {
  logger: Logger;
  metrics?: RpcMetrics;
  /** A span per call, continuing the caller's `traceparent`; none when omitted. */
  tracing?: Tracing | undefined;
}

/**
 * The remote end of the connection, set by the Node adapter (connect's HandlerContext has no
 * socket). A function, so the address is only formatted when a handler asks for it.
 */
export const kPeer = createContextKey<(() => string | undefined) | undefined>(undefined, {
  description: "gatehouse peer address",
});

/**
 * Routes for connect-node (`connectNodeAdapter({ routes })` or {@link createConnectNodeHandler}):
 * every registration's handlers, wrapped so they see a CallContext and throw ConnectErrors with the
 * same google.rpc details as the gRPC adapter.
 */
export function createConnectRoutes(
  services: readonly ServiceRegistration[],
  options: ConnectRoutesOptions,
): (router: ConnectRouter) => void {
  const metrics = options.metrics ?? NO_RPC_METRICS;
  // Checked now, so a bad registration fails at start rather than when connect-node calls routes.
  const bound = services.map((registration) => ({ registration, methods: boundMethods(registration) }));
  return (router) => {
    for (const { registration, methods } of bound) {
      for (const m of methods) {
        router.rpc(
          m.method,
          wrap(registration.service.typeName, m, options.logger, metrics, options.tracing),
        );
      }
    }
  };
}

function wrap(
  serviceName: string,
  { method, handler }: BoundMethod,
  logger: Logger,
  metrics: RpcMetrics,
  tracing: Tracing | undefined,
) {
  const methodName = method.name;
  return async (req: Message, hctx: HandlerContext): Promise<MessageInitShape<DescMessage>> => {
    const started = performance.now();
    const protocol = protocolOf(hctx.protocolName);
    const ctx = new HeadersCallContext(
      serviceName,
      methodName,
      protocol,
      hctx.requestHeader,
      hctx.values.get(kPeer),
    );
    ctx.span = rpcSpan(tracing, serviceName, methodName, protocol, (name) => ctx.header(name));
    try {
      const response = await handler(req, ctx);
      metrics.record(serviceName, methodName, protocol, GrpcCode.OK, (performance.now() - started) / 1000);
      endRpcSpan(ctx.span, GrpcCode.OK);
      return response;
    } catch (thrown) {
      const err = settleFailure(thrown, ctx, logger);
      const seconds = (performance.now() - started) / 1000;
      metrics.record(serviceName, methodName, protocol, grpcCodeOf(err.code), seconds, err.code);
      endRpcSpan(ctx.span, grpcCodeOf(err.code), err.code);
      throw toConnectError(err, ctx.requestId);
    }
  };
}

function protocolOf(protocolName: string): RpcProtocol {
  return protocolName === "grpc-web" || protocolName === "grpc" ? protocolName : "connect";
}
