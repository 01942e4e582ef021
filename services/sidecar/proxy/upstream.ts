import * as http from "node:http";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import { type Readable, Writable } from "node:stream";

/** Where the proxy sends allowed requests. */
export interface UpstreamTarget {
  /** `http`: HTTP/1.1 with keep-alive; `h2c`: HTTP/2 cleartext with prior knowledge (gRPC). */
  readonly protocol: "http" | "h2c";
  readonly host: string;
  readonly port: number;
}

/** `http://host:port` or `h2c://host:port`, nothing after the port. */
export function parseUpstream(url: string): UpstreamTarget {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, "");
  if (protocol !== "http" && protocol !== "h2c")
    throw new TypeError(`upstream must be http:// or h2c://: ${url}`);
  if ((u.pathname !== "" && u.pathname !== "/") || u.search !== "" || u.username !== "") {
    throw new TypeError(`upstream must be an origin (scheme://host:port) only: ${url}`);
  }
  return {
    protocol,
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: u.port === "" ? 80 : Number(u.port),
  };
}

export type UpstreamFailure = "connect_timeout" | "connect_failed" | "reset" | "other";

/** Why the app gave no answer; the proxy turns it into 502 / UNAVAILABLE. */
export class UpstreamError extends Error {
  override readonly name = "UpstreamError";
  constructor(
    readonly reason: UpstreamFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface UpstreamRequest {
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  /** The caller's `host` / `:authority`, passed on unchanged. */
  readonly authority: string | undefined;
  /** Headers already cleaned (see forward-headers.ts); no pseudo-headers, no host. */
  readonly headers: http.OutgoingHttpHeaders;
  /** False when the caller's request has no body: the upstream request ends with its headers. */
  readonly hasBody: boolean;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** True when the answer ended with its headers (a gRPC trailers-only answer, a 204...). */
  readonly endedWithHeaders: boolean;
  /** Trailers may follow the body (HTTP/2 always; HTTP/1.1 only when chunked). */
  readonly mayHaveTrailers: boolean;
  readonly body: Readable;
  /** The trailers, once `body` has ended (undefined when none came). */
  trailers(): http.IncomingHttpHeaders | undefined;
}

export interface UpstreamExchange {
  /** Where the caller's body goes (pipe into it); already ended when `hasBody` was false. */
  readonly body: Writable;
  /**
   * The caller's request trailers (already cleaned), to follow the body: call before `body` ends.
   * HTTP/2 upstreams get them as a trailing HEADERS frame; HTTP/1.1 ones in the last chunk, which
   * needs a chunked request (a caller that sent `content-length` has its trailers dropped, as
   * HTTP/1.1 has no other place for them).
   */
  sendTrailers(trailers: http.OutgoingHttpHeaders): void;
  /** The answer's head; rejects with UpstreamError when the app cannot be reached or resets. */
  readonly response: Promise<UpstreamResponse>;
  /** The caller went away: cancel the upstream request. */
  abort(): void;
}

export interface Upstream {
  readonly target: UpstreamTarget;
  request(request: UpstreamRequest): UpstreamExchange;
  /** Closes pooled connections (HTTP/2: GOAWAY after streams in flight finish). */
  close(): void;
}

export interface UpstreamOptions {
  /** A connection not established within this fails the request with `connect_timeout`. */
  connectTimeoutMs: number;
  /** Most HTTP/1.1 connections open to the app at a time; further requests queue for one. */
  maxSockets: number;
}

export function createUpstream(target: UpstreamTarget, options: UpstreamOptions): Upstream {
  return target.protocol === "h2c" ? h2cUpstream(target, options) : http1Upstream(target, options);
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * HTTP/1.1 through a keep-alive agent (LIFO, so a few warm connections carry the load; at most
 * `maxSockets`, so a flood of callers cannot open unbounded connections to the app). A request
 * without a body that fails on a reused connection the app had just closed (the keep-alive race)
 * is retried once on a fresh connection.
 */
function http1Upstream(target: UpstreamTarget, options: UpstreamOptions): Upstream {
  const agent = new http.Agent({
    keepAlive: true,
    keepAliveMsecs: 30_000,
    maxSockets: options.maxSockets,
    maxFreeSockets: Math.min(256, options.maxSockets),
    scheduling: "lifo",
  });

  function send(request: UpstreamRequest, retry: boolean, exchange: { current?: http.ClientRequest }) {
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const headers = { ...request.headers };
      if (request.authority !== undefined) headers.host = request.authority;
      const req = http.request({
        host: target.host,
        port: target.port,
        method: request.method,
        path: request.path,
        headers,
        agent,
        setHost: request.authority === undefined,
      });
      exchange.current = req;
      let connectTimer: NodeJS.Timeout | undefined;
      req.once("socket", (socket: Socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(() => {
          req.destroy(
            new UpstreamError(
              "connect_timeout",
              `no connection to the app within ${options.connectTimeoutMs} ms`,
            ),
          );
        }, options.connectTimeoutMs);
        socket.once("connect", () => clearTimeout(connectTimer));
      });
      req.once("response", (res) => {
        clearTimeout(connectTimer);
        resolve({
          status: res.statusCode ?? 502,
          headers: res.headers,
          endedWithHeaders: false,
          mayHaveTrailers: /chunked/i.test(res.headers["transfer-encoding"] ?? ""),
          body: res,
          trailers: () => (res.rawTrailers.length === 0 ? undefined : res.trailers),
        });
      });
      let failed = false;
      req.on("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(connectTimer);
        if (failed) return;
        failed = true;
        if (retry && req.reusedSocket && err.code === "ECONNRESET") {
          send(request, false, exchange).then(resolve, reject);
          return;
        }
        reject(asUpstreamError(err));
      });
      if (!request.hasBody) req.end();
    });
  }

  return {
    target,
    request(request) {
      const exchange: { current?: http.ClientRequest } = {};
      const response = send(request, !request.hasBody && IDEMPOTENT.has(request.method), exchange);
      return {
        body: exchange.current!,
        response,
        sendTrailers(trailers) {
          // A retry happens only for requests without a body, so `current` is the one being written.
          const req = exchange.current;
          if (req !== undefined && !req.writableEnded && req.getHeader("content-length") === undefined) {
            req.addTrailers(trailers);
          }
        },
        abort: () => exchange.current?.destroy(),
      };
    },
    close: () => agent.destroy(),
  };
}

/**
 * HTTP/2 cleartext over one pooled session, opened on first use and again whenever it closes,
 * fails or is told to go away (GOAWAY: streams in flight finish on the old one).
 */
function h2cUpstream(target: UpstreamTarget, options: UpstreamOptions): Upstream {
  const authority = `http://${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  let current: http2.ClientHttp2Session | undefined;
  let closed = false;

  function session(): http2.ClientHttp2Session {
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    const s = http2.connect(authority, { peerMaxConcurrentStreams: 1000 });
    current = s;
    const forget = () => {
      if (current === s) current = undefined;
    };
    s.on("error", forget);
    s.once("close", forget);
    s.once("goaway", forget);
    if (!s.connecting) return s;
    const timer = setTimeout(() => {
      s.destroy(
        new UpstreamError(
          "connect_timeout",
          `no connection to the app within ${options.connectTimeoutMs} ms`,
        ),
      );
    }, options.connectTimeoutMs);
    s.once("connect", () => clearTimeout(timer));
    s.once("close", () => clearTimeout(timer));
    return s;
  }

  return {
    target,
    request(request) {
      const headers: http2.OutgoingHttpHeaders = {
        ...request.headers,
        ":method": request.method,
        ":path": request.path,
        ":scheme": "http",
        ":authority": request.authority ?? `${target.host}:${target.port}`,
      };
      // With a body, the stream waits for trailers after it: whether the caller sends any is known
      // only at its end. None: `sendTrailers({})`, which Node sends as an empty DATA frame with
      // END_STREAM, so the app sees the request end exactly as it would have.
      const options = { endStream: !request.hasBody, waitForTrailers: request.hasBody };
      let stream: http2.ClientHttp2Stream;
      try {
        if (closed) throw new UpstreamError("other", "the proxy is shutting down");
        try {
          stream = session().request(headers, options);
        } catch {
          // The pooled session went away (GOAWAY, closed) before we heard of it: one fresh try.
          current = undefined;
          stream = session().request(headers, options);
        }
      } catch (err) {
        const failed = Promise.reject(asUpstreamError(err));
        failed.catch(() => {});
        return { body: discard(), response: failed, sendTrailers: () => {}, abort: () => {} };
      }
      let requestTrailers: http.OutgoingHttpHeaders = {};
      if (request.hasBody) {
        stream.once("wantTrailers", () => {
          if (!stream.closed) stream.sendTrailers(requestTrailers);
        });
      }
      let trailers: http.IncomingHttpHeaders | undefined;
      stream.once("trailers", (t) => {
        trailers = t;
      });
      const response = new Promise<UpstreamResponse>((resolve, reject) => {
        const onError = (err: Error) => reject(asUpstreamError(err));
        stream.on("error", onError);
        stream.once("close", () => {
          reject(new UpstreamError("reset", `the app reset the stream (code ${stream.rstCode})`));
        });
        stream.once("response", (head, flags) => {
          stream.off("error", onError);
          stream.on("error", () => {});
          const { ":status": status, ...rest } = head;
          resolve({
            status: Number(status ?? 502),
            headers: rest,
            endedWithHeaders: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0,
            mayHaveTrailers: true,
            body: stream,
            trailers: () => trailers,
          });
        });
      });
      return {
        body: stream,
        response,
        sendTrailers(trailers) {
          requestTrailers = trailers;
        },
        abort: () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        },
      };
    },
    close() {
      closed = true;
      current?.close();
      current = undefined;
    },
  };
}

function asUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  // HTTP/2 streams fail with a generic stream error whose cause is what went wrong with the session.
  if (e?.cause !== undefined && e.cause !== err) {
    const inner = asUpstreamError(e.cause);
    if (inner.reason !== "other") return inner;
  }
  const code = e?.code;
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return new UpstreamError("connect_failed", `cannot connect to the app (${code})`, { cause: err });
  }
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ERR_HTTP2_STREAM_ERROR") {
    return new UpstreamError("reset", `the app closed the connection (${code})`, { cause: err });
  }
  return new UpstreamError("other", `the app could not be reached (${code ?? e?.message})`, { cause: err });
}

/** A body sink for a request that never started. */
function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}
