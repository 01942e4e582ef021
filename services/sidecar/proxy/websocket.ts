import * as http from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type Denial, httpDenialHeaders } from "../control/denial.ts";
import type { Guard } from "../control/guard.ts";
import { queryOf } from "../control/guard.ts";
import { identityHeaders } from "../control/identity-headers.ts";
import { requestHeadersForUpstream } from "./forward-headers.ts";
import type { UpstreamFailure, UpstreamTarget } from "./upstream.ts";

export interface WebSocketProxyOptions {
  guard: Guard;
  target: UpstreamTarget;
  forwardToken: boolean;
  stripAuthorization: boolean;
  connectTimeoutMs: number;
  trustedProxy: (address: string) => boolean;
  onUpstreamError(reason: UpstreamFailure): void;
}

export const UNAVAILABLE_BODY = JSON.stringify({ error: "unavailable", message: "the app is not answering" });

export interface UpgradeRequest {
  readonly req: http.ClientRequest;
  /** Whether the app has answered (`upgrade` or `response`). */
  readonly answered: boolean;
  /** Call from the `upgrade` and `response` handlers: stops the connect timer. */
  answer(): void;
}

/**
 * Sends an Upgrade handshake to the app on a connection of its own (never pooled: it becomes the
 * tunnel), with the connect timeout armed. `onError` gets why the request failed before the app
 * answered (for the upstream-error metric and the 502), or `null` when it failed afterwards, when
 * all that is left is to tear the tunnel down. Both WebSocket front ends (HTTP/1.1 and RFC 8441)
 * use it, so they time out and classify failures alike.
 */
export function requestUpgrade(
  options: Pick<WebSocketProxyOptions, "target" | "connectTimeoutMs">,
  init: { method: string; path: string; headers: http.OutgoingHttpHeaders; setHost: boolean },
  onError: (reason: UpstreamFailure | null) => void,
): UpgradeRequest {
  const req = http.request({
    host: options.target.host,
    port: options.target.port,
    method: init.method,
    path: init.path,
    headers: init.headers,
    agent: false,
    setHost: init.setHost,
  });
  let connectTimer: NodeJS.Timeout | undefined;
  let timedOut = false;
  let answered = false;
  req.once("socket", (s: Socket) => {
    if (!s.connecting) return;
    connectTimer = setTimeout(() => {
      timedOut = true;
      req.destroy();
    }, options.connectTimeoutMs);
    s.once("connect", () => clearTimeout(connectTimer));
  });
  req.on("error", (err: NodeJS.ErrnoException) => {
    clearTimeout(connectTimer);
    if (answered) {
      onError(null);
      return;
    }
    answered = true;
    onError(timedOut ? "connect_timeout" : err.code === "ECONNREFUSED" ? "connect_failed" : "other");
  });
  return {
    req,
    get answered() {
      return answered;
    },
    answer() {
      clearTimeout(connectTimer);
      answered = true;
    },
  };
}

/**
 * HTTP/1.1 `Upgrade` requests. WebSocket (RFC 6455): the handshake is authorized like any request, then sent to
 * the app with the identity headers on a connection of its own (HTTP/1.1 even for an `h2c://`
 * upstream, which must then also accept HTTP/1.1 on its port); once the app answers 101, bytes flow
 * both ways untouched until either side closes. A refused handshake gets the usual 401/403 answer;
 * an app that does not switch protocols has its answer relayed and the connection closed.
 */
export function createWebSocketProxy(
  options: WebSocketProxyOptions,
): (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { guard } = options;
  return (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    // Other upgrades (`Upgrade: h2c` from `curl --http2`) are declined the usual way: the request is
    // passed on as a plain one, without its Upgrade header. Only body-less ones: Node has already
    // handed us the raw connection.
    const websocket = (req.headers.upgrade ?? "").toLowerCase() === "websocket";
    const hasBody =
      req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
    if (!websocket && hasBody) {
      writeRaw(socket, 501, { "content-type": "text/plain" }, "only WebSocket upgrades are supported\n");
      return;
    }
    const url = req.url ?? "/";
    guard
      .check({ method: req.method ?? "GET", target: url, authorization: req.headers.authorization }, "proxy")
      .then((result) => {
        if (socket.destroyed) return;
        if (!result.allowed) {
          deny(socket, result.denial);
          return;
        }
        const headers = requestHeadersForUpstream(req.headers, {
          stripAuthorization: options.stripAuthorization,
          websocket,
          remoteAddress: req.socket.remoteAddress,
          authority: req.headers.host,
          trustedProxy: options.trustedProxy,
        });
        if (result.identity !== null) {
          for (const [name, value] of identityHeaders(result.identity, options.forwardToken))
            headers[name] = value;
        }
        if (req.headers.host !== undefined) headers.host = req.headers.host;
        const upstream = requestUpgrade(
          options,
          {
            method: req.method ?? "GET",
            path: result.path + queryOf(url),
            headers,
            setHost: req.headers.host === undefined,
          },
          (reason) => {
            if (reason === null) {
              socket.destroy();
              return;
            }
            options.onUpstreamError(reason);
            writeRaw(socket, 502, { "content-type": "application/json" }, UNAVAILABLE_BODY);
          },
        );
        const upstreamReq = upstream.req;
        upstreamReq.once("upgrade", (res, upstreamSocket, upstreamHead) => {
          upstream.answer();
          socket.write(responseHead(res.statusCode ?? 101, res.statusMessage, res.rawHeaders));
          if (upstreamHead.length > 0) socket.write(upstreamHead);
          if (head.length > 0) upstreamSocket.write(head);
          upstreamSocket.on("error", () => socket.destroy());
          upstreamSocket.once("close", () => socket.destroy());
          socket.once("close", () => upstreamSocket.destroy());
          upstreamSocket.pipe(socket);
          socket.pipe(upstreamSocket);
        });
        upstreamReq.once("response", (res) => {
          // The app declined to switch: relay its answer, delimited by closing the connection.
          upstream.answer();
          const raw: string[] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const name = res.rawHeaders[i]!.toLowerCase();
            if (name !== "connection" && name !== "transfer-encoding" && name !== "keep-alive") {
              raw.push(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
            }
          }
          raw.push("connection", "close");
          socket.write(responseHead(res.statusCode ?? 502, res.statusMessage, raw));
          res.pipe(socket);
        });
        upstreamReq.end();
      })
      .catch(() => socket.destroy());
  };
}

function deny(socket: Duplex, denial: Denial): void {
  writeRaw(socket, denial.httpStatus, httpDenialHeaders(denial), denial.body);
}

function writeRaw(socket: Duplex, status: number, headers: Record<string, string>, body: string): void {
  if (socket.destroyed) return;
  const raw: string[] = [];
  for (const [name, value] of Object.entries(headers)) raw.push(name, value);
  raw.push("content-length", String(Buffer.byteLength(body)), "connection", "close");
  socket.end(responseHead(status, undefined, raw) + body);
}

function responseHead(status: number, message: string | undefined, rawHeaders: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${message ?? http.STATUS_CODES[status] ?? ""}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return `${head}\r\n`;
}
