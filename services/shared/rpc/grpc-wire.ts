import type * as http2 from "node:http2";
import { gunzipSync, inflateSync, constants as zlibConstants } from "node:zlib";
import { GatehouseError } from "../errors/gatehouse-error.ts";
import { GrpcCode } from "../errors/status-map.ts";

/**
 * gRPC over HTTP/2 on a raw node:http2 stream, without a gRPC library: the 5-byte message prefix
 * (compressed flag, big-endian length), the status trailers, and trailers-only answers. The token
 * service's gRPC port and the sidecar's control port serve gRPC with it: the token service uses
 * 0.90–0.93× the CPU per call it used on grpc-js's server (compare-revisions, README), and it shares
 * a port with HTTP routes, which grpc-js cannot.
 *
 * Requests may be compressed with gzip or deflate (as grpc-js, grpc-go and grpc-java can be told
 * to); answers never are. Any other encoding gets UNIMPLEMENTED and the list of the ones we take.
 */

/** A status to end a call with: `details` is a base64 google.rpc.Status for `grpc-status-details-bin`. */
export interface GrpcStatus {
  readonly code: number;
  readonly message: string;
  readonly details?: string | undefined;
}

/** A handler for every stream whose `:path` names one method. */
export type GrpcStreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

/**
 * How long a call's request message may take to arrive, from the stream's opening to the client's
 * end of stream, unless the server says otherwise. A request message is at most tens of KiB, so this
 * bounds the whole message, not the gap between bytes: a client that drips one byte a second holds
 * a stream no longer than one that sends nothing.
 */
export const REQUEST_MESSAGE_TIMEOUT_MS = 30_000;

/** A limit on the time a request message takes to arrive, and the status that ends a call over it. */
export interface RequestTimeout {
  readonly ms: number;
  status(): GrpcStatus;
}

/**
 * A `ms` limit whose call ends with `request_timeout` (DEADLINE_EXCEEDED), as `statusOf` writes a
 * GatehouseError; the error is made only if the limit is reached.
 */
export function requestTimeout(ms: number, statusOf: (err: GatehouseError) => GrpcStatus): RequestTimeout {
  return {
    ms,
    status: () =>
      statusOf(new GatehouseError("request_timeout", `the request message did not arrive within ${ms} ms`)),
  };
}

/** Encodings whose requests we decompress; advertised on every answer. */
const GRPC_ACCEPT_ENCODING = "identity,deflate,gzip";

const FRAME_HEADER = 5;

/** One length-prefixed gRPC message (not compressed). */
export function grpcMessageFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, FRAME_HEADER);
  return frame;
}

/** The headers of a trailers-only answer (or of trailers): status, percent-encoded message, details. */
export function grpcStatusHeaders(code: number, message: string, details?: string): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": "application/grpc",
    "grpc-status": String(code),
    "grpc-message": encodeGrpcMessage(message),
  };
  if (details !== undefined) headers["grpc-status-details-bin"] = details;
  return headers;
}

/** gRPC's percent-encoding of `grpc-message`: UTF-8, every byte outside 0x20-0x7E and `%` escaped. */
export function encodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * True when the stream is a gRPC call in protobuf: a POST with content type `application/grpc` or
 * `application/grpc+proto` (parameters allowed). gRPC-Web (`application/grpc-web`) and other codecs
 * (`application/grpc+json`) would be misread as protobuf frames, so they are refused (HTTP 415).
 */
export function isGrpcRequest(headers: http2.IncomingHttpHeaders): boolean {
  const contentType = headers["content-type"];
  if (headers[":method"] !== "POST" || typeof contentType !== "string") return false;
  const semicolon = contentType.indexOf(";");
  const type = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  return type === "application/grpc" || type === "application/grpc+proto";
}

/**
 * Ends a call that has sent nothing yet, trailers-only: one HEADERS frame with the status. If the
 * client has not finished its request, RST_STREAM(NO_ERROR) follows the answer and tells it to stop
 * sending (RFC 9113 §8.1): our answer ends only our half of the stream, and a client that never
 * ends its own would otherwise keep the stream open, counted against the connection's limit.
 * Whatever it sent meanwhile is read and dropped, so flow control never stalls the connection.
 */
export function respondGrpcStatus(
  stream: http2.ServerHttp2Stream,
  status: GrpcStatus,
  httpStatus = 200,
): void {
  if (stream.closed || stream.headersSent) return;
  stream.respond(
    {
      ":status": httpStatus,
      "grpc-accept-encoding": GRPC_ACCEPT_ENCODING,
      ...grpcStatusHeaders(status.code, status.message, status.details),
    },
    { endStream: true },
  );
  stream.resume();
  // Node sends the RST_STREAM once the answer is written (close waits for 'finish').
  if (stream.state.remoteClose === 0) stream.close();
}

/**
 * Ends a call with `status`: trailers-only if nothing was sent, else in the trailers after the
 * messages already written. What the client sends after that is read and dropped.
 */
export function endGrpcCall(stream: http2.ServerHttp2Stream, status: GrpcStatus): void {
  if (!stream.headersSent) respondGrpcStatus(stream, status);
  else if (!stream.closed) {
    stream.removeAllListeners("wantTrailers");
    stream.once("wantTrailers", () =>
      stream.sendTrailers(grpcStatusHeaders(status.code, status.message, status.details)),
    );
    stream.end();
  }
  stream.resume();
}

/** The answer to a unary call: HEADERS, one DATA frame with the message, trailers with status OK. */
export function respondGrpcMessage(stream: http2.ServerHttp2Stream, message: Uint8Array): void {
  if (stream.closed || stream.headersSent) return;
  startGrpcResponse(stream);
  stream.end(grpcMessageFrame(message));
}

/**
 * Sends the response headers of a call that will write its messages itself (`grpcMessageFrame`)
 * and then `end()` the stream: the trailers then say OK.
 */
export function startGrpcResponse(stream: http2.ServerHttp2Stream): void {
  stream.respond(
    { ":status": 200, "content-type": "application/grpc", "grpc-accept-encoding": GRPC_ACCEPT_ENCODING },
    { waitForTrailers: true },
  );
  stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
}

/** Why a request could not be read; answered by the reader itself, before any handler runs. */
function tooLarge(maxBytes: number): GrpcStatus {
  return { code: GrpcCode.RESOURCE_EXHAUSTED, message: `request message larger than ${maxBytes} bytes` };
}

type RequestEncoding = "identity" | "gzip" | "deflate";

/**
 * What every reader checks first: the call is gRPC in protobuf (else HTTP 415) and its encoding is
 * one we take. Returns that encoding, or undefined after `refuse` was told why not.
 */
function acceptRequest(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  refuse: (status: GrpcStatus, httpStatus?: number) => void,
): RequestEncoding | undefined {
  stream.on("error", () => {});
  if (!isGrpcRequest(headers)) {
    refuse({ code: GrpcCode.UNIMPLEMENTED, message: "expected a gRPC request" }, 415);
    return undefined;
  }
  const encoding = headers["grpc-encoding"];
  if (encoding === undefined || encoding === "identity") return "identity";
  if (encoding === "gzip" || encoding === "deflate") return encoding;
  refuse({ code: GrpcCode.UNIMPLEMENTED, message: `grpc-encoding ${String(encoding)} is not supported` });
  return undefined;
}

/**
 * One message's bytes after its prefix: as they are, or decompressed (never beyond `maxBytes`); or
 * the status that refuses a flag the encoding does not allow, or bytes that do not decompress.
 */
function messageBytes(
  flag: number,
  bytes: Uint8Array,
  encoding: RequestEncoding,
  maxBytes: number,
): Uint8Array | GrpcStatus {
  if (flag === 0) return bytes;
  if (flag !== 1) return { code: GrpcCode.INTERNAL, message: `message flag ${flag} is neither 0 nor 1` };
  if (encoding === "identity") {
    return {
      code: GrpcCode.INTERNAL,
      message: "a compressed message in a request that declares no grpc-encoding",
    };
  }
  try {
    return (encoding === "gzip" ? gunzipSync : inflateSync)(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    return (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" ||
      (err as { errno?: number }).errno === zlibConstants.Z_BUF_ERROR
      ? tooLarge(maxBytes)
      : { code: GrpcCode.INTERNAL, message: `the request message does not decompress as ${encoding}` };
  }
}

function isGrpcStatus(value: unknown): value is GrpcStatus {
  return typeof value === "object" && value !== null && "code" in value && "message" in value;
}

/**
 * Reads the one request message of a unary or server-streaming call and hands it to `onMessage`.
 * A request that is not a gRPC call (HTTP 415), too large, compressed in a way we do not take, or
 * does not carry exactly one message is answered here, trailers-only, and never reaches
 * `onMessage`; `onRefused` hears the status it was answered with (for metrics). So is one whose
 * message has not fully arrived within `timeout`: the answer ends the stream and frees its slot
 * under the connection's stream limit.
 */
export function readGrpcRequest(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  maxBytes: number,
  onMessage: (message: Uint8Array) => void,
  onRefused?: (status: GrpcStatus) => void,
  timeout?: RequestTimeout,
): void {
  const refuse = (status: GrpcStatus, httpStatus?: number): void => {
    respondGrpcStatus(stream, status, httpStatus);
    onRefused?.(status);
  };
  const encoding = acceptRequest(stream, headers, refuse);
  if (encoding === undefined) return;
  const chunks: Buffer[] = [];
  let received = 0;
  let refused = false;
  let timer: NodeJS.Timeout | undefined;
  if (timeout !== undefined) {
    timer = setTimeout(() => {
      if (refused || stream.closed) return;
      refused = true;
      refuse(timeout.status());
    }, timeout.ms);
    // A stream the client resets never ends: the timer must not keep it (and its closure) alive.
    stream.once("close", () => clearTimeout(timer));
  }
  stream.on("data", (chunk: Buffer) => {
    if (refused) return;
    received += chunk.length;
    if (received > maxBytes + FRAME_HEADER) {
      refused = true;
      refuse(tooLarge(maxBytes));
      return;
    }
    chunks.push(chunk);
  });
  stream.on("end", () => {
    clearTimeout(timer);
    if (refused || stream.closed) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (body.length < FRAME_HEADER || body.length !== FRAME_HEADER + body.readUInt32BE(1)) {
      refuse({
        code: GrpcCode.INVALID_ARGUMENT,
        message:
          body.length === 0
            ? "the request carries no gRPC message"
            : "a unary request must carry exactly one gRPC message",
      });
      return;
    }
    const message = messageBytes(body[0]!, body.subarray(FRAME_HEADER), encoding, maxBytes);
    if (isGrpcStatus(message)) {
      refuse(message);
      return;
    }
    onMessage(message);
  });
}

/**
 * Reads the messages of a client-streaming or bidi call as they arrive: `onMessage` for each,
 * `onEnd` when the client half-closes. A message over `maxBytes` or one that does not decompress
 * ends the call here, trailers-only (or with trailers, if the handler has answered already).
 */
export function readGrpcMessages(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  maxBytes: number,
  onMessage: (message: Uint8Array) => void,
  onEnd: () => void,
): void {
  const encoding = acceptRequest(stream, headers, (status, httpStatus) =>
    respondGrpcStatus(stream, status, httpStatus),
  );
  if (encoding === undefined) return;
  let failed = false;
  const fail = (status: GrpcStatus): void => {
    failed = true;
    endGrpcCall(stream, status);
  };
  // Chunks as they came, joined only once a prefix or a whole message is there: a client may send
  // one byte per DATA frame, and joining at every chunk would copy a message once per byte.
  let chunks: Buffer[] = [];
  let buffered = 0;
  const joined = (): Buffer => {
    if (chunks.length > 1) chunks = [Buffer.concat(chunks, buffered)];
    return chunks[0]!;
  };
  stream.on("data", (chunk: Buffer) => {
    if (failed) return;
    chunks.push(chunk);
    buffered += chunk.length;
    while (buffered >= FRAME_HEADER) {
      const head = chunks[0]!.length >= FRAME_HEADER ? chunks[0]! : joined();
      const length = head.readUInt32BE(1);
      if (length > maxBytes) {
        fail(tooLarge(maxBytes));
        return;
      }
      if (buffered < FRAME_HEADER + length) return;
      const all = joined();
      const message = messageBytes(
        all[0]!,
        all.subarray(FRAME_HEADER, FRAME_HEADER + length),
        encoding,
        maxBytes,
      );
      if (isGrpcStatus(message)) {
        fail(message);
        return;
      }
      const rest = all.subarray(FRAME_HEADER + length);
      chunks = rest.length > 0 ? [rest] : [];
      buffered = rest.length;
      onMessage(message);
      if (failed || stream.closed) return;
    }
  });
  stream.on("end", () => {
    if (failed || stream.closed) return;
    if (buffered > 0) {
      fail({ code: GrpcCode.INVALID_ARGUMENT, message: "the request ends inside a gRPC message" });
      return;
    }
    onEnd();
  });
}

/**
 * A unary method as bytes: the request message in, the response message out. Throw
 * GatehouseError to fail; `statusOf` turns what was thrown into the status sent.
 */
export type UnaryBytesHandler = (request: Uint8Array) => Promise<Uint8Array> | Uint8Array;

/**
 * Serves one unary call whose handler works on bytes (the sidecar's ext_authz Check and health
 * Check): reads the request, calls the handler, answers its message or the status of what it threw.
 * A request message that has not arrived within `timeoutMs` ends the call with `request_timeout`.
 */
export function serveGrpcUnary(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  handler: UnaryBytesHandler,
  statusOf: (thrown: unknown) => GrpcStatus,
  maxBytes = 4 * 1024 * 1024,
  timeoutMs = REQUEST_MESSAGE_TIMEOUT_MS,
): void {
  const timeout = requestTimeout(timeoutMs, statusOf);
  readGrpcRequest(
    stream,
    headers,
    maxBytes,
    (message) => {
      let answer: Promise<Uint8Array> | Uint8Array;
      try {
        answer = handler(message);
      } catch (err) {
        respondGrpcStatus(stream, statusOf(err));
        return;
      }
      if (answer instanceof Uint8Array) respondGrpcMessage(stream, answer);
      else
        answer.then(
          (bytes) => respondGrpcMessage(stream, bytes),
          (err) => respondGrpcStatus(stream, statusOf(err)),
        );
    },
    undefined,
    timeout,
  );
}
