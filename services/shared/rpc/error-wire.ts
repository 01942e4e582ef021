import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { type Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/proto/google/rpc/error_details_pb.ts";
import { type Status, StatusSchema } from "../../gen/proto/google/rpc/status_pb.ts";
import { ERROR_DOMAIN, type GatehouseError } from "../errors/gatehouse-error.ts";
import { grpcCodeOf } from "../errors/status-map.ts";
import type { GrpcStatus } from "./grpc-wire.ts";

/**
 * How a GatehouseError looks on the wire (see proto/gatehouse/v1/errors.proto): a gRPC status with
 * the public message, and details holding exactly one google.rpc.ErrorInfo{reason: code, domain:
 * "gatehouse", metadata} plus a google.rpc.RetryInfo when the error says when to retry. The
 * request id joins the metadata so a caller can quote it and we can find the log line.
 */

function errorInfo(err: GatehouseError, requestId: string): MessageInitShape<typeof ErrorInfoSchema> {
  return { reason: err.code, domain: ERROR_DOMAIN, metadata: { ...err.metadata, requestId } };
}

function retryInfo(retryAfterMs: number): MessageInitShape<typeof RetryInfoSchema> {
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  return { retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 } };
}

/** The google.rpc.Status message for an error. */
function errorStatus(err: GatehouseError, requestId: string): Status {
  const details = [anyPack(ErrorInfoSchema, create(ErrorInfoSchema, errorInfo(err, requestId)))];
  if (err.retryAfterMs !== undefined) {
    details.push(anyPack(RetryInfoSchema, create(RetryInfoSchema, retryInfo(err.retryAfterMs))));
  }
  return create(StatusSchema, { code: grpcCodeOf(err.code), message: err.message, details });
}

/** The status that ends a failed gRPC call: code, message, and `grpc-status-details-bin` (base64). */
export function grpcStatusOf(err: GatehouseError, requestId: string): GrpcStatus {
  const status = errorStatus(err, requestId);
  const bytes = toBinary(StatusSchema, status);
  return {
    code: status.code,
    message: status.message,
    details: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
  };
}

/**
 * A ConnectError with the same code, message and details. connect-node writes it as a Connect JSON
 * error body, or as gRPC / gRPC-Web trailers with `grpc-status-details-bin`. Connect answers also
 * get a `retry-after` header (seconds) when the error carries a retry delay.
 */
export function toConnectError(err: GatehouseError, requestId: string): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: errorInfo(err, requestId) },
  ];
  let metadata: Record<string, string> | undefined;
  if (err.retryAfterMs !== undefined) {
    details.push({ desc: RetryInfoSchema, value: retryInfo(err.retryAfterMs) });
    metadata = { "retry-after": String(Math.max(0, Math.ceil(err.retryAfterMs / 1000))) };
  }
  // gRPC and Connect number their codes identically.
  return new ConnectError(err.message, grpcCodeOf(err.code) as number as Code, metadata, details);
}
