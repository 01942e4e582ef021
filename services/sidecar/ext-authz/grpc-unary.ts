import type * as http2 from "node:http2";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { GrpcCode } from "../../shared/errors/status-map.ts";
import { denialOf, grpcStatusHeaders } from "../control/denial.ts";

/** A unary method as bytes: the request message in, the response message out. Throw GatehouseError to fail. */
export type UnaryBytesHandler = (request: Uint8Array) => Promise<Uint8Array> | Uint8Array;

export interface GrpcUnaryOptions {
  /** Largest request message. Default 4 MiB (Envoy can be told to send the request body along). */
  maxMessageBytes?: number;
  /** Failures that are not GatehouseErrors (bugs), for logs. */
  onInternalError?(err: unknown): void;
}

const FRAME_HEADER = 5;

/**
 * Serves one unary gRPC call on an HTTP/2 stream, without a gRPC library: reads the
 * length-prefixed request message (5-byte prefix: compressed flag, big-endian length), calls the
 * handler, and answers HEADERS, one DATA frame, and trailers with `grpc-status: 0` — or a
 * trailers-only response with `grpc-status`, `grpc-message` and `grpc-status-details-bin` on
 * failure. Only the identity encoding is offered (`grpc-accept-encoding: identity`), so conforming
 * clients never compress; a compressed message gets UNIMPLEMENTED.
 *
 * This is all the gRPC an ext_authz server needs, and it costs less per call than grpc-js (see
 * bench/sidecar.ts), which in any case cannot share its port with HTTP routes.
 */
export function serveGrpcUnary(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  handler: UnaryBytesHandler,
  options: GrpcUnaryOptions = {},
): void {
  readGrpcRequest(stream, headers, options, (message) => {
    let answer: Promise<Uint8Array> | Uint8Array;
    try {
      answer = handler(message);
    } catch (err) {
      failGrpcCall(stream, err, options);
      return;
    }
    if (answer instanceof Uint8Array) respondMessage(stream, answer);
    else
      answer.then(
        (bytes) => respondMessage(stream, bytes),
        (err) => failGrpcCall(stream, err, options),
      );
  });
}

/**
 * Reads the one request message of a unary or server-streaming call and hands it to `onMessage`;
 * a request that is not one (wrong method or content type, too large, compressed, not exactly one
 * message) is answered here, trailers-only, and never reaches `onMessage`.
 */
export function readGrpcRequest(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  options: GrpcUnaryOptions,
  onMessage: (message: Uint8Array) => void,
): void {
  const maxBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  stream.on("error", () => {});
  const contentType = headers["content-type"] ?? "";
  if (headers[":method"] !== "POST" || !contentType.startsWith("application/grpc")) {
    // Not a gRPC request at all: gRPC answers HTTP 415 for a wrong content-type.
    respondTrailersOnly(stream, GrpcCode.UNIMPLEMENTED, "expected a gRPC request", 415);
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  let tooLarge = false;
  stream.on("data", (chunk: Buffer) => {
    if (tooLarge) return;
    received += chunk.length;
    if (received > maxBytes + FRAME_HEADER) {
      tooLarge = true;
      respondTrailersOnly(
        stream,
        GrpcCode.RESOURCE_EXHAUSTED,
        `request message larger than ${maxBytes} bytes`,
      );
      return;
    }
    chunks.push(chunk);
  });
  stream.on("end", () => {
    if (tooLarge || stream.closed) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    let message: Uint8Array;
    try {
      message = readSingleMessage(body);
    } catch (err) {
      failGrpcCall(stream, err, options);
      return;
    }
    onMessage(message);
  });
}

/** One length-prefixed gRPC message (not compressed). */
export function grpcMessageFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, FRAME_HEADER);
  return frame;
}

/** The one message of a unary request body. */
function readSingleMessage(body: Buffer): Uint8Array {
  if (body.length < FRAME_HEADER) {
    throw new GatehouseError("invalid_request", "the request carries no gRPC message");
  }
  const compressed = body[0]!;
  const length = body.readUInt32BE(1);
  if (compressed !== 0) throw new UnsupportedCompression();
  if (body.length !== FRAME_HEADER + length) {
    throw new GatehouseError("invalid_request", "a unary request must carry exactly one gRPC message");
  }
  return body.subarray(FRAME_HEADER);
}

class UnsupportedCompression extends Error {}

function respondMessage(stream: http2.ServerHttp2Stream, message: Uint8Array): void {
  if (stream.closed || stream.headersSent) return;
  const frame = grpcMessageFrame(message);
  stream.respond(
    { ":status": 200, "content-type": "application/grpc", "grpc-accept-encoding": "identity" },
    { waitForTrailers: true },
  );
  stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.end(frame);
}

/** Ends a call that has sent nothing yet with the status of `err` (a GatehouseError, else internal). */
export function failGrpcCall(stream: http2.ServerHttp2Stream, err: unknown, options: GrpcUnaryOptions): void {
  if (err instanceof UnsupportedCompression) {
    respondTrailersOnly(stream, GrpcCode.UNIMPLEMENTED, "compressed messages are not supported");
    return;
  }
  if (!(err instanceof GatehouseError)) options.onInternalError?.(err);
  const denial = denialOf(GatehouseError.from(err));
  respondTrailersOnly(stream, denial.grpcStatus, denial.message, 200, denial.grpcStatusDetails);
}

function respondTrailersOnly(
  stream: http2.ServerHttp2Stream,
  code: number,
  message: string,
  httpStatus = 200,
  details?: string,
): void {
  if (stream.closed || stream.headersSent) return;
  stream.respond(
    {
      ":status": httpStatus,
      "grpc-accept-encoding": "identity",
      ...grpcStatusHeaders(code, message, details),
    },
    { endStream: true },
  );
  // Whatever else the client sends is of no interest; read it so flow control never stalls.
  stream.resume();
}
