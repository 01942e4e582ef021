import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../gen/proto/google/rpc/error_details_pb.ts";
import { isGatehouseErrorCode } from "../shared/errors/codes.ts";
import { GatehouseError } from "../shared/errors/gatehouse-error.ts";

/**
 * A failed token-service call as one GatehouseError: the server's reason (its `google.rpc.ErrorInfo`)
 * and retry delay (`RetryInfo`) when it sent them; otherwise `unavailable` for a service that could
 * not be reached, and `request_timeout` for a call whose deadline passed (its outcome is unknown).
 * The ConnectError stays as `cause`, for logs.
 */
export function rpcFailure(err: unknown): GatehouseError {
  if (err instanceof GatehouseError) return err;
  const cause = ConnectError.from(err);
  const delay = cause.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const retryAfterMs =
    delay === undefined ? undefined : Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
  const info = cause.findDetails(ErrorInfoSchema)[0];
  if (info !== undefined) {
    const code = isGatehouseErrorCode(info.reason) ? info.reason : "internal";
    return new GatehouseError(code, cause.rawMessage, {
      cause,
      metadata: info.metadata,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (cause.code === Code.Unavailable) {
    return new GatehouseError("unavailable", `token service unavailable: ${cause.rawMessage}`, { cause });
  }
  if (cause.code === Code.DeadlineExceeded) {
    return new GatehouseError("request_timeout", "token service call timed out", { cause });
  }
  return new GatehouseError("internal", cause.rawMessage, { cause });
}
