import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import {
  findTrailerError,
  setTrailerStatus as setGrpcTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import {
  setTrailerStatus,
  trailerFlag,
  trailerParse,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import { GatehouseError } from "../errors/gatehouse-error.ts";
import { toConnectError } from "./error-wire.ts";

/**
 * connect-node decodes request messages before any handler or interceptor runs, and reports a bad
 * message itself: binary garbage as INTERNAL "parse binary: ...", bad JSON as INVALID_ARGUMENT, both
 * without ErrorInfo. Our contract (errors.proto) says a malformed request is INVALID_ARGUMENT with
 * reason `invalid_request`, and a 5xx must mean a server fault. So the Node adapter passes each
 * error response through here and rewrites exactly those errors: a connect error with no details is
 * one that never reached our code. This leans on connect's internal protocol helpers (pinned
 * version; test/integration/rpc-layer.test.ts covers every case).
 */

/** The error to send instead, or undefined when `error` is not a decode failure from connect. */
function replacement(error: ConnectError): GatehouseError | undefined {
  if (error.details.length > 0) return undefined;
  let message: string;
  if (error.code === Code.InvalidArgument) message = error.rawMessage;
  else if (error.code === Code.Internal && error.rawMessage.startsWith("parse binary:")) {
    message = "the request message could not be decoded";
  } else return undefined;
  return new GatehouseError("invalid_request", message);
}

/** Called with each rewrite (for metrics); gives the request id the error carries. */
export type OnDecodeFailure = (protocol: "connect" | "grpc-web" | "grpc") => string;

/** `response`, or a copy whose decode-failure error is rewritten as `invalid_request`. */
export function repairDecodeFailure(
  response: UniversalServerResponse,
  onRepair: OnDecodeFailure,
): UniversalServerResponse | Promise<UniversalServerResponse> {
  const type = response.header?.get("content-type") ?? "";
  if (type.startsWith("application/grpc-web") && response.body !== undefined) {
    return { ...response, body: repairGrpcWebBody(response.body, onRepair) };
  }
  if ((response.status === 400 || response.status === 500) && type === "application/json") {
    return repairConnectUnary(response, onRepair);
  }
  if (type.startsWith("application/grpc") && response.trailer !== undefined) {
    return { ...response, body: repairGrpcTrailer(response.body, response.trailer, onRepair) };
  }
  return response;
}

/**
 * gRPC over HTTP/2 (served by connect-node on single-port listeners): the status is in the
 * trailers, which connect fills in while the body is read, so they are looked at once it ends.
 */
async function* repairGrpcTrailer(
  body: AsyncIterable<Uint8Array> | undefined,
  trailer: Headers,
  onRepair: OnDecodeFailure,
): AsyncGenerator<Uint8Array> {
  let sent = false;
  for await (const chunk of body ?? []) {
    sent = sent || chunk.byteLength > 0;
    yield chunk;
  }
  if (sent) return;
  const error = findTrailerError(trailer);
  const fixed = error === undefined ? undefined : replacement(error);
  if (fixed === undefined) return;
  for (const name of [...trailer.keys()]) trailer.delete(name);
  setGrpcTrailerStatus(trailer, toConnectError(fixed, onRepair("grpc")));
}

/** Connect unary: the error is the whole JSON body. */
async function repairConnectUnary(
  response: UniversalServerResponse,
  onRepair: OnDecodeFailure,
): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body ?? []) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const unparsable = new ConnectError("", Code.Unknown);
  const error = errorFromJsonBytes(bytes, undefined, unparsable);
  const fixed = error === unparsable ? undefined : replacement(error);
  if (fixed === undefined) return { ...response, body: once(bytes) };
  const body = errorToJsonBytes(toConnectError(fixed, onRepair("connect")), undefined);
  const header = new Headers(response.header);
  header.set("content-length", String(body.byteLength));
  return { ...response, status: 400, header, body: once(body) };
}

/** gRPC-Web: an error before any message is a lone trailer frame at the start of the body. */
async function* repairGrpcWebBody(
  body: AsyncIterable<Uint8Array>,
  onRepair: OnDecodeFailure,
): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) return;
  yield repairTrailerFrame(first.value, onRepair) ?? first.value;
  yield* { [Symbol.asyncIterator]: () => it };
}

function repairTrailerFrame(frame: Uint8Array, onRepair: OnDecodeFailure): Uint8Array | undefined {
  if (frame.byteLength < 5 || frame[0] !== trailerFlag) return undefined;
  const length = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(1);
  if (length !== frame.byteLength - 5) return undefined;
  const error = findTrailerError(trailerParse(frame.subarray(5)));
  const fixed = error === undefined ? undefined : replacement(error);
  if (fixed === undefined) return undefined;
  const trailer = setTrailerStatus(new Headers(), toConnectError(fixed, onRepair("grpc-web")));
  return encodeEnvelope(trailerFlag, trailerSerialize(trailer));
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
