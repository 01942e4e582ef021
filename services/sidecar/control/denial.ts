import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../gen/proto/google/rpc/status_pb.ts";
import { ERROR_DOMAIN, GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { STATUS_BY_CODE } from "../../shared/errors/status-map.ts";
import { type GrpcStatus, grpcStatusHeaders } from "../../shared/rpc/grpc-wire.ts";

/** The realm named in every `WWW-Authenticate` challenge. */
const REALM = "gatehouse";

/** How one refusal reads on every transport the sidecar answers on. Shared by requests: read-only. */
export interface Denial {
  readonly code: GatehouseError["code"];
  /** Public message (never the private cause; `internal` says only "internal error"). */
  readonly message: string;
  readonly httpStatus: number;
  readonly grpcStatus: number;
  /** RFC 6750 §3 challenge, for 400, 401 and 403 answers. */
  readonly wwwAuthenticate: string | undefined;
  /** `{"error": code, "message": ...}` */
  readonly body: string;
  /** Seconds, when the error says when to retry. */
  readonly retryAfter: string | undefined;
  /** google.rpc.Status{code, message, details: [ErrorInfo{reason: code, domain: "gatehouse"}]}, base64. */
  readonly grpcStatusDetails: string;
}

const memo = new Map<string, Denial>();
const MEMO_SIZE = 512;

/**
 * The answer for a refused request: status codes from the one status map, an RFC 6750 challenge
 * (`Bearer realm="gatehouse"` alone when no token came; `error="invalid_token"` with the reason as
 * `error_description` for a bad one; `error="insufficient_scope"` and the `scope` the route needs on
 * 403, or `error_description="actor_not_allowed"` for a route's `actors`), the JSON body, and the gRPC status details. Memoized: a flood of bad tokens costs one lookup.
 */
export function denialOf(err: GatehouseError): Denial {
  const key = `${err.code}\0${err.message}\0${err.retryAfterMs ?? ""}\0${err.metadata.scope ?? ""}\0${err.metadata.actor ?? ""}`;
  let denial = memo.get(key);
  if (denial === undefined) {
    denial = build(err);
    if (memo.size >= MEMO_SIZE) memo.clear();
    memo.set(key, denial);
  }
  return denial;
}

function build(err: GatehouseError): Denial {
  const { code } = err;
  const { http, grpc } = STATUS_BY_CODE[code];
  const message = code === "internal" ? "internal error" : err.message;
  const retryAfter =
    err.retryAfterMs === undefined ? undefined : String(Math.max(0, Math.ceil(err.retryAfterMs / 1000)));
  const details = [
    anyPack(
      ErrorInfoSchema,
      create(ErrorInfoSchema, {
        reason: code,
        domain: ERROR_DOMAIN,
        metadata: {
          ...(err.metadata.scope === undefined ? {} : { scope: err.metadata.scope }),
          ...(err.metadata.actor === undefined ? {} : { actor: err.metadata.actor }),
        },
      }),
    ),
  ];
  if (err.retryAfterMs !== undefined) {
    const ms = Math.max(0, Math.ceil(err.retryAfterMs));
    details.push(
      anyPack(
        RetryInfoSchema,
        create(RetryInfoSchema, {
          retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 },
        }),
      ),
    );
  }
  const status = toBinary(StatusSchema, create(StatusSchema, { code: grpc, message, details }));
  return Object.freeze({
    code,
    message,
    httpStatus: http,
    grpcStatus: grpc,
    wwwAuthenticate: challenge(err, http),
    body: JSON.stringify({ error: code, message }),
    retryAfter,
    grpcStatusDetails: Buffer.from(status).toString("base64"),
  });
}

function challenge(err: GatehouseError, httpStatus: number): string | undefined {
  const realm = `Bearer realm="${REALM}"`;
  if (err.code === "missing_token") return realm;
  if (err.code === "insufficient_scope") {
    const scope = err.metadata.scope;
    return `${realm}, error="insufficient_scope", error_description="insufficient_scope"${
      scope === undefined ? "" : `, scope="${quote(scope)}"`
    }`;
  }
  // RFC 6750 names no error for "wrong caller"; insufficient_scope is its 403, the reason says which.
  if (err.code === "actor_not_allowed")
    return `${realm}, error="insufficient_scope", error_description="actor_not_allowed"`;
  if (httpStatus === 401) return `${realm}, error="invalid_token", error_description="${err.code}"`;
  if (httpStatus === 400) return `${realm}, error="invalid_request", error_description="${err.code}"`;
  return undefined;
}

function quote(value: string): string {
  return value.replace(/["\\]/g, "\\$&");
}

/** The headers of an HTTP refusal (body: `denial.body`). */
export function httpDenialHeaders(denial: Denial): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "cache-control": "no-store",
  };
  if (denial.wwwAuthenticate !== undefined) headers["www-authenticate"] = denial.wwwAuthenticate;
  if (denial.retryAfter !== undefined) headers["retry-after"] = denial.retryAfter;
  return headers;
}

/**
 * A gRPC trailers-only refusal: HTTP 200 with `grpc-status`, `grpc-message` (percent-encoded as the
 * gRPC spec asks) and `grpc-status-details-bin`, all in the one HEADERS frame that ends the stream.
 */
export function grpcDenialHeaders(denial: Denial): Record<string, string> {
  return grpcStatusHeaders(denial.grpcStatus, denial.message, denial.grpcStatusDetails);
}

/**
 * The status a failed gRPC call on the control port ends with (ext_authz Check, health): a
 * GatehouseError's denial; anything else is a bug, reported to `onBug` and answered as `internal`.
 */
export function grpcDenialStatus(thrown: unknown, onBug: (err: unknown) => void): GrpcStatus {
  if (!(thrown instanceof GatehouseError)) onBug(thrown);
  const denial = denialOf(GatehouseError.from(thrown));
  return { code: denial.grpcStatus, message: denial.message, details: denial.grpcStatusDetails };
}
