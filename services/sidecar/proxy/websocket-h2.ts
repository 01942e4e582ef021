import { createHash, randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import type { Duplex } from "node:stream";
import { httpDenialHeaders } from "../control/denial.ts";
import { queryOf } from "../control/guard.ts";
import { identityHeaders } from "../control/identity-headers.ts";
import { requestHeadersForUpstream } from "./forward-headers.ts";
import { requestUpgrade, UNAVAILABLE_BODY, type WebSocketProxyOptions } from "./websocket.ts";

const { NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR, NGHTTP2_NO_ERROR } = http2.constants;
/** RFC 6455 §1.3: the GUID the server's `Sec-WebSocket-Accept` hashes with the client's key. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Answer headers of the app's 101 that mean something to an RFC 8441 client. */
const PASSED_BACK = ["sec-websocket-protocol", "sec-websocket-extensions"];

/**
 * WebSocket over HTTP/2 (RFC 8441): an extended CONNECT stream (`:method CONNECT`, `:protocol
 * websocket`) on the h2c listener, which advertises SETTINGS_ENABLE_CONNECT_PROTOCOL. Authorized
 * like the HTTP/1.1 handshake — as a `GET` of `:path`, so one policy rule covers a WebSocket route
 * whichever HTTP version the caller speaks — then bridged to the app as an HTTP/1.1 Upgrade on a
 * connection of its own. RFC 8441 has no `Sec-WebSocket-Key`, so the sidecar makes one and checks
 * the app's `Sec-WebSocket-Accept` itself; the caller gets `:status 200` and then the same frames
 * the app writes, untouched, as DATA (extensions and subprotocol are negotiated end to end).
 * Refusals are the usual 401/403; an app that cannot be reached is 502, one that declines to switch
 * has its answer relayed.
 */
export function createH2WebSocketProxy(
  options: WebSocketProxyOptions,
): (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void {
  const { guard } = options;
  return (stream, headers) => {
    const path = headers[":path"] ?? "/";
    const authority = headers[":authority"];
    stream.on("error", () => {});
    guard
      .check({ method: "GET", target: path, authorization: headers.authorization }, "proxy")
      .then((result) => {
        if (stream.closed) return;
        if (!result.allowed) {
          const body = result.denial.body;
          stream.respond({
            ":status": result.denial.httpStatus,
            ...httpDenialHeaders(result.denial),
            "content-length": String(Buffer.byteLength(body)),
          });
          stream.end(body);
          stream.resume();
          return;
        }
        const out = requestHeadersForUpstream(headers, {
          stripAuthorization: options.stripAuthorization,
          remoteAddress: stream.session?.socket?.remoteAddress,
          authority,
          trustedProxy: options.trustedProxy,
        });
        if (result.identity !== null) {
          for (const [name, value] of identityHeaders(result.identity, options.forwardToken))
            out[name] = value;
        }
        const key = randomBytes(16).toString("base64");
        out.connection = "upgrade";
        out.upgrade = "websocket";
        out["sec-websocket-key"] = key;
        out["sec-websocket-version"] = headers["sec-websocket-version"] ?? "13";
        if (authority !== undefined) out.host = authority;
        const giveUp = () => {
          if (!stream.closed) stream.close(NGHTTP2_CANCEL);
        };
        const upstream = requestUpgrade(
          options,
          {
            method: "GET",
            path: result.path + queryOf(path),
            headers: out,
            setHost: authority === undefined,
          },
          (reason) => {
            if (reason === null) {
              giveUp();
              return;
            }
            options.onUpstreamError(reason);
            if (stream.closed) return;
            stream.respond({ ":status": 502, "content-type": "application/json" });
            stream.end(UNAVAILABLE_BODY);
          },
        );
        const upstreamReq = upstream.req;
        stream.once("close", () => {
          if (!upstream.answered) upstreamReq.destroy();
        });
        upstreamReq.once("upgrade", (res, upstreamSocket: Duplex, upstreamHead: Buffer) => {
          upstream.answer();
          const accept = createHash("sha1")
            .update(key + WEBSOCKET_GUID)
            .digest("base64");
          if (res.headers["sec-websocket-accept"] !== accept || stream.closed) {
            // Not a WebSocket server, or one that answered someone else's handshake.
            upstreamSocket.destroy();
            if (!stream.closed) {
              options.onUpstreamError("other");
              stream.respond({ ":status": 502, "content-type": "application/json" });
              stream.end(UNAVAILABLE_BODY);
            }
            return;
          }
          const answer: http2.OutgoingHttpHeaders = { ":status": 200 };
          for (const name of PASSED_BACK)
            if (res.headers[name] !== undefined) answer[name] = res.headers[name];
          stream.respond(answer);
          if (upstreamHead.length > 0) stream.write(upstreamHead);
          upstreamSocket.on("error", () => giveUp());
          // Either side's orderly end is passed on as an orderly end; a reset as a reset
          // (CONNECT_ERROR, RFC 8441 §4). Once the app's side is gone nothing the caller still
          // sends can go anywhere: after our END_STREAM is out, RST_STREAM(NO_ERROR) tells the
          // caller to stop (RFC 9113 §8.1) rather than leave the stream half open.
          upstreamSocket.once("close", () => {
            if (stream.closed) return;
            if (!stream.writableEnded) stream.close(NGHTTP2_CONNECT_ERROR);
            else if (stream.writableFinished) stream.close(NGHTTP2_NO_ERROR);
            else stream.once("finish", () => stream.close(NGHTTP2_NO_ERROR));
          });
          stream.once("close", () => upstreamSocket.destroy());
          upstreamSocket.pipe(stream);
          stream.pipe(upstreamSocket);
        });
        upstreamReq.once("response", (res) => {
          // The app declined to switch: relay its answer.
          upstream.answer();
          if (stream.closed) {
            res.destroy();
            return;
          }
          const answer: http2.OutgoingHttpHeaders = { ":status": res.statusCode ?? 502 };
          for (const name of ["content-type", "content-length", "www-authenticate"]) {
            if (res.headers[name] !== undefined) answer[name] = res.headers[name];
          }
          stream.respond(answer);
          res.pipe(stream);
        });
        upstreamReq.end();
      })
      .catch(() => {
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
  };
}
