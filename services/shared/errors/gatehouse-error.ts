import type { GatehouseErrorCode } from "./codes.ts";
import { isGatehouseErrorCode } from "./codes.ts";

/** The error domain put in `google.rpc.ErrorInfo.domain`. */
export const ERROR_DOMAIN = "gatehouse";

export interface GatehouseErrorOptions {
  /** Private detail for logs only; never sent to the caller. */
  cause?: unknown;
  /** Extra public key/values for `ErrorInfo.metadata` (e.g. which scope was missing). Never secrets. */
  metadata?: Record<string, string>;
  /** For `rate_limited` and `unavailable`: how long the caller should wait before retrying. */
  retryAfterMs?: number;
}

/**
 * The one error class Gatehouse throws on purpose. `message` is public (it reaches the caller);
 * `cause` is private. Anything else that escapes a handler becomes `internal` with a generic message
 * via {@link GatehouseError.from}, so stack traces and driver errors never leave the process.
 */
export class GatehouseError extends Error {
  override readonly name = "GatehouseError";
  readonly code: GatehouseErrorCode;
  readonly metadata: Readonly<Record<string, string>>;
  readonly retryAfterMs: number | undefined;

  constructor(code: GatehouseErrorCode, message: string, options: GatehouseErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.metadata = Object.freeze({ ...options.metadata });
    this.retryAfterMs = options.retryAfterMs;
  }

  /** Turns anything thrown into a GatehouseError, keeping the original as `cause` for logs. */
  static from(err: unknown): GatehouseError {
    if (err instanceof GatehouseError) return err;
    if (isTransientDatabaseError(err)) {
      return new GatehouseError("unavailable", "the database is unavailable, retry shortly", {
        cause: err,
        retryAfterMs: 1000,
      });
    }
    return new GatehouseError("internal", "internal error", { cause: err });
  }

  /** Rebuilds an error received over the wire from its reason string. */
  static fromReason(reason: string, message: string, metadata?: Record<string, string>): GatehouseError {
    return new GatehouseError(isGatehouseErrorCode(reason) ? reason : "internal", message, {
      ...(metadata ? { metadata } : {}),
    });
  }
}

/** Postgres/driver failures that mean "try again later", not "bug": connection loss, shutdown. */
function isTransientDatabaseError(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    // 08xxx connection exceptions, 57P01-03 admin shutdown / crash shutdown / cannot connect now,
    // 53300 too many connections; Node socket errors while talking to the database.
    if (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === "53300") return true;
    if (code === "ECONNREFUSED" || code === "ECONNRESET" || code === "EPIPE" || code === "ETIMEDOUT")
      return true;
  }
  const message = (err as { message?: unknown }).message;
  return (
    typeof message === "string" &&
    /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message)
  );
}
