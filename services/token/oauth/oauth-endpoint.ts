import type http from "node:http";
import { TokenService } from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GrpcCode, grpcCodeOf } from "../../shared/errors/status-map.ts";
import type { Logger } from "../../shared/logging/index.ts";
import { type CallContext, requestIdFrom } from "../../shared/rpc/call-context.ts";
import { settleFailure } from "../../shared/rpc/call-failure.ts";
import type { HttpRouteHandler } from "../../shared/rpc/http-server.ts";
import type { RpcMetrics } from "../../shared/rpc/rpc-metrics.ts";
import { endRpcSpan, rpcSpan } from "../../shared/tracing/rpc-spans.ts";
import type { TraceSpan, Tracing } from "../../shared/tracing/tracing.ts";
import type { TokenServiceMethod } from "../clients/caller-roles.ts";
import { type GrantErrorMapping, sendOAuthError } from "./oauth-errors.ts";

/**
 * The call context of one OAuth form post. `method` starts as the endpoint's and becomes the
 * TokenService method whose rules apply once known (the token endpoint learns it from `grant_type`),
 * so metrics and logs name the same method as the RPC would.
 */
class FormCallContext implements CallContext {
  readonly service = TokenService.typeName;
  readonly protocol = "oauth2";
  readonly requestId: string;
  /** The grant's own error names (RFC 8693 §2.2.2), set by the token endpoint with `method`. */
  grantErrorOf: GrantErrorMapping | undefined;
  span: TraceSpan | undefined;

  constructor(
    private readonly req: http.IncomingMessage,
    public method: TokenServiceMethod | "Token",
  ) {
    const id = req.headers["x-request-id"];
    this.requestId = requestIdFrom(Array.isArray(id) ? id[0] : id);
  }

  header(name: string): string | undefined {
    const value = this.req.headers[name];
    return Array.isArray(value) ? value.join(", ") : value;
  }

  get peer(): string | undefined {
    const { remoteAddress, remotePort } = this.req.socket;
    return remoteAddress === undefined ? undefined : `${remoteAddress}:${remotePort}`;
  }
}

export interface OAuthEndpointOptions {
  logger: Logger;
  metrics: RpcMetrics;
  /** A span per request, continuing the caller's `traceparent`; none when omitted. */
  tracing?: Tracing | undefined;
}

/** Handles one OAuth request; writes its success answer, throws anything else. */
export type OAuthHandler = (
  ctx: FormCallContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
) => Promise<void>;

/**
 * Wraps an OAuth endpoint as an HTTP route with the RPCs' bookkeeping: one
 * `gatehouse_rpc_duration_seconds{protocol="oauth2"}` observation per request, failures turned into
 * GatehouseErrors once (internal ones logged with their private cause, expected refusals only
 * counted) and answered as OAuth errors. Neither the form body nor the authorization header is
 * ever logged.
 */
export function oauthEndpoint(
  method: TokenServiceMethod | "Token",
  options: OAuthEndpointOptions,
  handle: OAuthHandler,
): HttpRouteHandler {
  return async (req, res) => {
    const started = performance.now();
    const ctx = new FormCallContext(req, method);
    ctx.span = rpcSpan(options.tracing, ctx.service, method, "oauth2", (name) => ctx.header(name));
    const seconds = () => (performance.now() - started) / 1000;
    try {
      await handle(ctx, req, res);
      options.metrics.record(ctx.service, ctx.method, ctx.protocol, GrpcCode.OK, seconds());
      ctx.span?.setAttribute("rpc.method", ctx.method);
      endRpcSpan(ctx.span, GrpcCode.OK);
    } catch (thrown) {
      const err = settleFailure(thrown, ctx, options.logger);
      options.metrics.record(
        ctx.service,
        ctx.method,
        ctx.protocol,
        grpcCodeOf(err.code),
        seconds(),
        err.code,
      );
      ctx.span?.setAttribute("rpc.method", ctx.method);
      endRpcSpan(ctx.span, grpcCodeOf(err.code), err.code);
      if (res.headersSent) res.destroy();
      else {
        // Refused before the body was read (too large, wrong type): close rather than drain it.
        if (!req.complete) res.setHeader("connection", "close");
        sendOAuthError(res, err, ctx.requestId, ctx.grantErrorOf);
      }
    }
  };
}

/** A successful OAuth JSON answer: never cached (RFC 6749 §5.1, RFC 7662 §4). */
export function sendOAuthJson(res: http.ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    pragma: "no-cache",
  });
  res.end(text);
}
