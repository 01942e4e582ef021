import type * as http from "node:http";
import type * as http2 from "node:http2";

/**
 * One plain HTTP request and its answer, the same over HTTP/1.1 and HTTP/2, for the control port's
 * small routes (`/authz`, `/healthz`, `/readyz`, `/metrics`). Request bodies are never read.
 */
export interface Exchange {
  readonly method: string;
  /** Path and query as received. */
  readonly target: string;
  /** A request header by lower-case name (the first, when repeated). */
  header(name: string): string | undefined;
  /** Sends the whole answer; a body is left out for HEAD. */
  respond(status: number, headers: Record<string, string>, body?: string): void;
}

export function http1Exchange(req: http.IncomingMessage, res: http.ServerResponse): Exchange {
  return {
    method: req.method ?? "GET",
    target: req.url ?? "/",
    header(name) {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
    respond(status, headers, body) {
      if (res.headersSent || res.destroyed) return;
      // An explicit length, 0 included, spares the chunked framing.
      headers["content-length"] = body === undefined ? "0" : String(Buffer.byteLength(body));
      res.writeHead(status, headers);
      res.end(req.method === "HEAD" ? undefined : body);
    },
  };
}

export function http2Exchange(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Exchange {
  stream.on("error", () => {});
  const method = headers[":method"] ?? "GET";
  return {
    method,
    target: headers[":path"] ?? "/",
    header(name) {
      const value = headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
    respond(status, responseHeaders, body) {
      if (stream.closed || stream.headersSent) return;
      if (body !== undefined) responseHeaders["content-length"] = String(Buffer.byteLength(body));
      const withBody = body !== undefined && body !== "" && method !== "HEAD";
      stream.respond({ ":status": status, ...responseHeaders }, { endStream: !withBody });
      if (withBody) stream.end(body);
      stream.resume();
    },
  };
}

/** A small JSON answer that no cache keeps. */
export function sendJson(exchange: Exchange, status: number, value: unknown): void {
  exchange.respond(
    status,
    { "content-type": "application/json", "cache-control": "no-store" },
    JSON.stringify(value),
  );
}
