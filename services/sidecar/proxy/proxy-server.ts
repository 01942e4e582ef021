import type * as http from "node:http";
import * as http2 from "node:http2";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { GrpcCode } from "../../shared/errors/status-map.ts";
import { type CleartextListener, createCleartextListener } from "../../shared/rpc/cleartext-listener.ts";
import { grpcStatusHeaders } from "../../shared/rpc/grpc-wire.ts";
import type { TraceSpan, Tracing } from "../../shared/tracing/tracing.ts";
import type { DecisionMetrics } from "../control/decision-metrics.ts";
import { type Denial, denialOf, grpcDenialHeaders, httpDenialHeaders } from "../control/denial.ts";
import { type Guard, type GuardRequest, type GuardResult, queryOf } from "../control/guard.ts";
import { checkInSpan, endGuardSpan, guardSpan } from "../control/guard-span.ts";
import { identityHeaders } from "../control/identity-headers.ts";
import { watchBodyIdle } from "./body-idle.ts";
import {
  forwardableTrailers,
  isGrpcContentType,
  requestHeadersForUpstream,
  requestTrailersForUpstream,
  responseHeadersForCaller,
} from "./forward-headers.ts";
import { type Upstream, UpstreamError, type UpstreamExchange, type UpstreamResponse } from "./upstream.ts";
import { createWebSocketProxy } from "./websocket.ts";
import { createH2WebSocketProxy } from "./websocket-h2.ts";

export interface ProxyServerOptions {
  guard: Guard;
  upstream: Upstream;
  forwardToken: boolean;
  stripAuthorization: boolean;
  connectTimeoutMs: number;
  /** Peers whose `x-forwarded-*` headers are kept (see forward-headers.ts). */
  trustedProxy: (address: string) => boolean;
  /** Connection and stream limits (see the sidecar settings of the same names). */
  limits: ProxyLimits;
  metrics: DecisionMetrics;
  logger: { debug(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /**
   * A span per request, continuing the caller's trace; the app then gets a `traceparent` naming
   * that span. Without it the caller's `traceparent` and `tracestate` pass through untouched.
   */
  tracing?: Tracing | undefined;
}

interface ProxyLimits {
  maxConnections: number;
  h2MaxConcurrentStreams: number;
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
}

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;
const BODY_TIMEOUT = denialOf(new GatehouseError("request_timeout", "the request body stopped arriving"));
const UNAVAILABLE = { error: "unavailable", message: "the app is not answering" };
const UNAVAILABLE_BODY = JSON.stringify(UNAVAILABLE);
const GRPC_UNAVAILABLE = grpcStatusHeaders(GrpcCode.UNAVAILABLE, UNAVAILABLE.message);

/**
 * The reverse proxy in front of the app (`:7401`). HTTP/1.1 and HTTP/2 share the port (see
 * cleartext-listener.ts); each request is authorized by the guard before a byte goes upstream, then
 * streamed both ways without buffering, trailers included (gRPC status travels in them), to an
 * HTTP/1.1 or h2c upstream. The app receives the canonical path the rule judged (and the original
 * query; ambiguous paths are refused with 400, over-long ones with 414), the
 * caller's headers minus hop-by-hop and `x-gatehouse-*` ones, and the identity headers. Refusals
 * follow RFC 6750 for HTTP callers and are trailers-only `UNAUTHENTICATED`/`PERMISSION_DENIED` with
 * ErrorInfo details for gRPC callers; an app that cannot be reached is 502 or `UNAVAILABLE`.
 * WebSockets come as HTTP/1.1 upgrades (websocket.ts) or HTTP/2 extended CONNECT (websocket-h2.ts).
 */
export function createProxyServer(options: ProxyServerOptions): CleartextListener {
  const { guard, upstream, metrics, logger, limits, tracing } = options;

  function upstreamHeaders(
    headers: http.IncomingHttpHeaders,
    result: Extract<GuardResult, { allowed: true }>,
    remoteAddress: string | undefined,
    authority: string | undefined,
    span: TraceSpan | undefined,
  ): http.OutgoingHttpHeaders {
    const out = requestHeadersForUpstream(headers, {
      stripAuthorization: options.stripAuthorization,
      remoteAddress,
      authority,
      trustedProxy: options.trustedProxy,
    });
    if (result.identity !== null) {
      for (const [name, value] of identityHeaders(result.identity, options.forwardToken)) out[name] = value;
    }
    const context = span?.headers();
    if (context !== undefined) {
      out.traceparent = context.traceparent;
      if (context.tracestate === undefined) delete out.tracestate;
      else out.tracestate = context.tracestate;
    }
    return out;
  }

  function failed(err: unknown): UpstreamError {
    const error =
      err instanceof UpstreamError ? err : new UpstreamError("other", String(err), { cause: err });
    metrics.upstreamError(error.reason);
    logger.debug({ reason: error.reason, err: error.message }, "upstream request failed");
    return error;
  }

  // ---- HTTP/1.1 callers ----

  function onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const headers = req.headers;
    const target = req.url ?? "/";
    const grpc = isGrpcContentType(headers["content-type"]);
    const request: GuardRequest = {
      method: req.method ?? "GET",
      target,
      authorization: headers.authorization,
    };
    const span = guardSpan(tracing, "proxy", request, (name) => first(headers[name]));
    let refusal: string | undefined;
    if (span !== undefined) res.once("close", () => endGuardSpan(span, res.statusCode, refusal));
    checkInSpan(guard, request, "proxy", span)
      .then((result) => {
        if (!result.allowed) {
          refusal = result.denial.code;
          denyHttp1(res, result.denial, grpc);
          return;
        }
        const hasBody =
          headers["transfer-encoding"] !== undefined || Number(headers["content-length"] ?? 0) > 0;
        const exchange = upstream.request({
          method: req.method ?? "GET",
          path: result.path + queryOf(target),
          authority: headers.host,
          headers: upstreamHeaders(headers, result, req.socket.remoteAddress, headers.host, span),
          hasBody,
        });
        if (hasBody) {
          // Chunked trailers are parsed by the time the body ends; this listener runs before the
          // pipe's own, so they are handed on before the upstream request is ended.
          req.once("end", () => {
            const trailers = requestTrailersForUpstream(
              req.rawTrailers.length > 0 ? req.trailers : undefined,
            );
            if (trailers !== undefined) exchange.sendTrailers(trailers);
          });
          req.pipe(exchange.body);
          watchBodyIdle(req, limits.bodyIdleTimeoutMs, () => {
            exchange.abort();
            if (res.headersSent) {
              res.destroy();
              return;
            }
            // The rest of the body is not waited for: the connection goes with the answer.
            res.shouldKeepAlive = false;
            res.once("finish", () => req.socket.destroy());
            denyHttp1(res, BODY_TIMEOUT, grpc);
          });
        }
        res.once("close", () => {
          if (!res.writableFinished) exchange.abort();
        });
        exchange.response
          .then(
            (answer) => relayToHttp1(req, res, answer),
            (err) => {
              failed(err);
              if (res.headersSent) res.destroy();
              else if (grpc) res.writeHead(200, GRPC_UNAVAILABLE).end();
              else sendBody(res, 502, { "content-type": "application/json" }, UNAVAILABLE_BODY);
            },
          )
          .catch((err) => {
            // E.g. a response header Node refuses to send on: nothing sensible left to answer.
            logger.error({ err }, "proxy could not relay the answer");
            exchange.abort();
            res.destroy();
          });
      })
      .catch((err) => {
        logger.error({ err }, "proxy request failed");
        if (!res.headersSent && !res.destroyed) {
          sendBody(res, 500, { "content-type": "application/json" }, INTERNAL_BODY);
        } else res.destroy();
      });
  }

  function relayToHttp1(req: http.IncomingMessage, res: http.ServerResponse, answer: UpstreamResponse): void {
    if (res.destroyed) {
      answer.body.destroy();
      return;
    }
    res.writeHead(answer.status, responseHeadersForCaller(answer.headers));
    if (answer.endedWithHeaders || req.method === "HEAD") {
      res.end();
      answer.body.resume();
      return;
    }
    let ended = false;
    answer.body.pipe(res, { end: false });
    answer.body.once("end", () => {
      ended = true;
      const trailers = forwardableTrailers(answer.trailers());
      if (trailers !== undefined) res.addTrailers(trailers);
      res.end();
    });
    answer.body.once("close", () => {
      if (ended || res.destroyed) return;
      failed(new UpstreamError("reset", "the app cut the response short"));
      res.destroy();
    });
  }

  // ---- HTTP/2 callers (gRPC) ----

  function onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => {});
    const method = headers[":method"] ?? "GET";
    const target = headers[":path"] ?? "/";
    const authority = headers[":authority"] ?? headers.host;
    const grpc = isGrpcContentType(headers["content-type"]);
    if (method === "CONNECT") {
      // Only RFC 8441's extended CONNECT, and only for WebSocket: the proxy is no tunnel.
      if (headers[":protocol"] === "websocket") webSocketOverH2(stream, headers);
      else stream.respond({ ":status": 405 }, { endStream: true });
      return;
    }
    const hasBody = !stream.endAfterHeaders;
    const request: GuardRequest = { method, target, authorization: headers.authorization };
    const span = guardSpan(tracing, "proxy", request, (name) => first(headers[name]));
    let refusal: string | undefined;
    if (span !== undefined) {
      stream.once("close", () => endGuardSpan(span, Number(stream.sentHeaders?.[":status"] ?? 0), refusal));
    }
    checkInSpan(guard, request, "proxy", span)
      .then((result) => {
        if (stream.closed) return;
        if (!result.allowed) {
          refusal = result.denial.code;
          denyHttp2(stream, result.denial, grpc);
          return;
        }
        const exchange = upstream.request({
          method,
          path: result.path + queryOf(target),
          authority,
          headers: upstreamHeaders(headers, result, stream.session?.socket?.remoteAddress, authority, span),
          hasBody,
        });
        if (hasBody) {
          // Trailers arrive before the stream's end; the upstream request waits for them.
          stream.once("trailers", (trailers: http2.IncomingHttpHeaders) => {
            const forward = requestTrailersForUpstream(trailers);
            if (forward !== undefined) exchange.sendTrailers(forward);
          });
          stream.pipe(exchange.body);
          watchBodyIdle(stream, limits.bodyIdleTimeoutMs, () => {
            exchange.abort();
            if (stream.closed) return;
            if (stream.headersSent) {
              stream.close(NGHTTP2_CANCEL);
              return;
            }
            // RST_STREAM(NO_ERROR) after the answer tells the caller to stop sending (RFC 9113 §8.1).
            stream.once("finish", () => stream.close(NGHTTP2_NO_ERROR));
            denyHttp2(stream, BODY_TIMEOUT, grpc);
          });
        }
        let answered: UpstreamResponse | undefined;
        stream.once("close", () => {
          // The caller went away (or reset the stream) before the app's answer was through.
          if (answered === undefined || !answered.body.readableEnded) exchange.abort();
        });
        exchange.response
          .then(
            (answer) => {
              answered = answer;
              relayToHttp2(stream, method, answer, exchange);
            },
            (err) => {
              failed(err);
              if (stream.closed) return;
              if (stream.headersSent) stream.close(NGHTTP2_INTERNAL_ERROR);
              else if (grpc) stream.respond({ ":status": 200, ...GRPC_UNAVAILABLE }, { endStream: true });
              else {
                stream.respond({ ":status": 502, "content-type": "application/json" });
                stream.end(UNAVAILABLE_BODY);
              }
            },
          )
          .catch((err) => {
            logger.error({ err }, "proxy could not relay the answer");
            exchange.abort();
            if (!stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR);
          });
      })
      .catch((err) => {
        logger.error({ err }, "proxy stream failed");
        if (stream.closed) return;
        if (!stream.headersSent) {
          stream.respond({ ":status": 500, "content-type": "application/json" });
          stream.end(INTERNAL_BODY);
        } else stream.close(NGHTTP2_INTERNAL_ERROR);
      });
  }

  function relayToHttp2(
    stream: http2.ServerHttp2Stream,
    method: string,
    answer: UpstreamResponse,
    exchange: UpstreamExchange,
  ): void {
    if (stream.closed) {
      exchange.abort();
      return;
    }
    const headers = responseHeadersForCaller(answer.headers);
    const noBody =
      answer.endedWithHeaders || method === "HEAD" || answer.status === 204 || answer.status === 304;
    const contentType = answer.headers["content-type"];
    const grpc = isGrpcContentType(contentType) && !String(contentType).startsWith("application/grpc-web");
    const waitForTrailers = !noBody && (grpc || answer.mayHaveTrailers);
    stream.respond({ ":status": answer.status, ...headers }, { endStream: noBody, waitForTrailers });
    if (noBody) {
      answer.body.resume();
      return;
    }
    if (waitForTrailers) {
      stream.once("wantTrailers", () => {
        const trailers = forwardableTrailers(answer.trailers());
        if (trailers !== undefined) stream.sendTrailers(trailers);
        else if (grpc)
          stream.sendTrailers(grpcStatusHeaders(GrpcCode.INTERNAL, "the app sent no gRPC status"));
        else stream.sendTrailers({});
      });
    }
    let ended = false;
    answer.body.once("end", () => {
      ended = true;
    });
    answer.body.once("close", () => {
      if (ended || stream.closed) return;
      failed(new UpstreamError("reset", "the app cut the response short"));
      const code = (answer.body as Partial<http2.ClientHttp2Stream>).rstCode;
      stream.close(code === NGHTTP2_CANCEL ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR);
    });
    answer.body.pipe(stream);
  }

  const webSocketOptions = {
    guard,
    target: upstream.target,
    forwardToken: options.forwardToken,
    stripAuthorization: options.stripAuthorization,
    connectTimeoutMs: options.connectTimeoutMs,
    trustedProxy: options.trustedProxy,
    onUpstreamError: (reason: UpstreamError["reason"]) => metrics.upstreamError(reason),
  };
  const webSocketOverH2 = createH2WebSocketProxy(webSocketOptions);

  return createCleartextListener({
    // Streams (gRPC, downloads, long polls) may take as long as they take; only idle connections
    // and slow request heads are cut.
    http1: {
      requestTimeout: 0,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      // Node checks header timeouts on this interval (default 30 s): often enough to honour them.
      connectionsCheckingInterval: Math.min(30_000, Math.max(25, Math.floor(limits.headersTimeoutMs / 4))),
    },
    // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3): HTTP/2 callers may open WebSockets.
    // SETTINGS_MAX_CONCURRENT_STREAMS: each stream may take an upstream connection.
    http2: {
      settings: { enableConnectProtocol: true, maxConcurrentStreams: limits.h2MaxConcurrentStreams },
    },
    maxConnections: limits.maxConnections,
    firstRequestTimeoutMs: limits.headersTimeoutMs,
    http2IdleTimeoutMs: limits.idleTimeoutMs,
    onRequest,
    onStream,
    onUpgrade: createWebSocketProxy(webSocketOptions),
    onClientError: (err) => logger.debug({ err: err.message }, "proxy connection error"),
  });
}

const INTERNAL_BODY = JSON.stringify({ error: "internal", message: "internal error" });

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function denyHttp1(res: http.ServerResponse, denial: Denial, grpc: boolean): void {
  if (grpc) res.writeHead(200, grpcDenialHeaders(denial)).end();
  else sendBody(res, denial.httpStatus, httpDenialHeaders(denial), denial.body);
}

function denyHttp2(stream: http2.ServerHttp2Stream, denial: Denial, grpc: boolean): void {
  if (grpc) {
    stream.respond({ ":status": 200, ...grpcDenialHeaders(denial) }, { endStream: true });
  } else {
    stream.respond({
      ":status": denial.httpStatus,
      ...httpDenialHeaders(denial),
      "content-length": String(Buffer.byteLength(denial.body)),
    });
    stream.end(denial.body);
  }
  // The request body (a gRPC client may still be streaming) is read and dropped.
  stream.resume();
}

function sendBody(
  res: http.ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string,
): void {
  res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
  res.end(body);
}
