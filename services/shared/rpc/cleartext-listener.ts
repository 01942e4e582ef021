import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";

/** The client connection preface every HTTP/2 connection starts with (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface CleartextListenerOptions {
  /** HTTP/1.x requests. */
  onRequest(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** HTTP/1.1 `Upgrade` requests (WebSocket); without it they are refused by Node. */
  onUpgrade?(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * HTTP/2 streams (h2c with prior knowledge, which is how gRPC and Envoy speak cleartext). Give
   * this or `onHttp2Request`, not both.
   */
  onStream?(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
  /** HTTP/2 requests through Node's compatibility API, for handlers written for it (connect-node). */
  onHttp2Request?(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void;
  http1?: http.ServerOptions;
  http2?: http2.ServerOptions;
  /** Open connections, HTTP/1.1 and HTTP/2 together; more are closed as soon as they are accepted. Default: no cap. */
  maxConnections?: number;
  /**
   * How long a new connection may take to send its first request: its first bytes (before the
   * protocol is known), and for HTTP/2 its first stream. HTTP/1.1 request heads are timed by
   * `http1.headersTimeout`.
   */
  firstRequestTimeoutMs: number;
  /** How long an HTTP/2 session may stay with no open stream before it is told to go (GOAWAY). Default: no limit. */
  http2IdleTimeoutMs?: number;
  /** Errors on single connections and streams (never fatal), for logs. */
  onClientError?(err: Error): void;
}

export interface CleartextListener {
  /** Binds `host:port` (port 0: any free port); resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** True once close() was called: responses then ask HTTP/1.1 clients to close their connection. */
  readonly draining: boolean;
  /**
   * Stops accepting connections, tells clients to go (HTTP/1.1: `Connection: close` and idle
   * connections closed; HTTP/2: GOAWAY), waits for requests in flight, and cuts whatever is left
   * (upgraded WebSockets included) after `graceMs`.
   */
  close(graceMs: number): Promise<void>;
}

/**
 * One cleartext port for HTTP/1.1 and HTTP/2. Node's `http2.createServer({ allowHTTP1 })` only
 * negotiates HTTP/1.1 over TLS (ALPN); in cleartext it speaks HTTP/2 alone. So this listens with an
 * `http.Server` (keeping its keep-alive, header and request timeouts) and looks at the first bytes of
 * each connection: the HTTP/2 preface hands the socket to an `http2` server, anything else goes to
 * HTTP/1.1 — one extra look per connection, none per request.
 */
export function createCleartextListener(options: CleartextListenerOptions): CleartextListener {
  const h1 = http.createServer(options.http1 ?? {}, (req, res) => {
    if (draining) res.setHeader("connection", "close");
    options.onRequest(req, res);
  });
  // Every connection, HTTP/2 ones included, is accepted by this server first (see below).
  if (options.maxConnections !== undefined) h1.maxConnections = options.maxConnections;
  const h2 = http2.createServer(options.http2 ?? {});
  if (options.onHttp2Request) h2.on("request", options.onHttp2Request);
  else if (options.onStream) h2.on("stream", options.onStream);
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const upgraded = new Set<Duplex>();
  let draining = false;

  const report = (err: Error) => options.onClientError?.(err);
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    report(err);
    if (socket.writable && !(socket as Socket).writableEnded) {
      // A request head that took longer than headersTimeout is a timeout, not a malformed request.
      const status = err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else socket.destroy();
  });
  h2.on("sessionError", report);
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (draining) session.close();
    closeWhenIdle(session, options.firstRequestTimeoutMs, options.http2IdleTimeoutMs);
  });
  if (options.onUpgrade !== undefined) {
    const onUpgrade = options.onUpgrade;
    h1.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      upgraded.add(socket);
      socket.once("close", () => upgraded.delete(socket));
      onUpgrade(req, socket, head);
    });
  }

  // Take over the http.Server's own connection handling: sniff first, then hand the socket on.
  const http1Connection = h1.listeners("connection")[0] as (socket: Socket) => void;
  h1.removeAllListeners("connection");
  h1.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    let seen: Buffer | undefined;
    // A connection that never says anything is not kept waiting for its first bytes forever.
    const onIdle = () => socket.destroy();
    socket.setTimeout(options.firstRequestTimeoutMs, onIdle);
    const onData = (chunk: Buffer) => {
      seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const http2Preface = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (http2Preface && seen.length < PREFACE.length) return;
      socket.off("data", onData);
      socket.off("error", onEarlyError);
      socket.off("end", onEarlyError);
      socket.setTimeout(0);
      socket.off("timeout", onIdle);
      socket.pause();
      socket.unshift(seen);
      if (http2Preface) h2.emit("connection", socket);
      else {
        http1Connection.call(h1, socket);
        process.nextTick(() => socket.resume());
      }
    };
    const onEarlyError = () => socket.destroy();
    socket.on("error", onEarlyError);
    // A peer that hangs up before its first byte: http.Server allows half-open sockets, and no
    // protocol has the socket yet to end ours, so without this it would hold its slot under the
    // connection cap until the first-request timeout.
    socket.once("end", onEarlyError);
    socket.on("data", onData);
  });

  let closing: Promise<void> | undefined;
  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        h1.once("error", reject);
        h1.listen(port, host, () => {
          h1.off("error", reject);
          resolve((h1.address() as AddressInfo).port);
        });
      });
    },
    get draining() {
      return draining;
    },
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        draining = true;
        h1.close();
        h1.closeIdleConnections();
        for (const session of sessions) session.close();
        const poll = setInterval(() => {
          h1.closeIdleConnections();
          if (sockets.size === 0) done();
        }, 25);
        const force = setTimeout(() => {
          for (const socket of upgraded) socket.destroy();
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
          done();
        }, graceMs);
        function done() {
          clearInterval(poll);
          clearTimeout(force);
          resolve();
        }
      });
      return closing;
    },
  };
}

/**
 * Sends GOAWAY to a session that has had no open stream for `idleMs` — or, before its first
 * stream, for `firstMs` — so neither an idle client nor one that never asks holds a connection
 * (and a slot under the connection cap) forever. Streams in flight are never cut by this.
 */
function closeWhenIdle(session: http2.ServerHttp2Session, firstMs: number, idleMs: number | undefined): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined = setTimeout(() => session.close(), firstMs);
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      if (--open === 0 && idleMs !== undefined && !session.closed) {
        timer = setTimeout(() => session.close(), idleMs);
      }
    });
  });
  session.once("close", () => clearTimeout(timer));
}
