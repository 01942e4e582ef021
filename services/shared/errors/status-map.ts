import type { GatehouseErrorCode } from "./codes.ts";

/** gRPC status codes (identical numbers in grpc-js `status` and connect-es `Code`). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

interface Mapping {
  grpc: GrpcCode;
  http: number;
}

const U = { grpc: GrpcCode.UNAUTHENTICATED, http: 401 } as const;
const DENIED = { grpc: GrpcCode.PERMISSION_DENIED, http: 403 } as const;

/**
 * The one place where error codes meet transports. A grant that is no longer good (expired, revoked,
 * reused) is UNAUTHENTICATED: retrying cannot help, the user has to sign in again. A caller asking
 * for more than it is allowed is PERMISSION_DENIED. Shape problems are INVALID_ARGUMENT.
 */
export const STATUS_BY_CODE: Readonly<Record<GatehouseErrorCode, Mapping>> = {
  invalid_request: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400 },
  invalid_path: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400 },
  ambiguous_path: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400 },
  path_too_long: { grpc: GrpcCode.INVALID_ARGUMENT, http: 414 },
  invalid_client: U,
  unauthorized_client: DENIED,
  audience_not_allowed: DENIED,
  scope_not_allowed: DENIED,
  claim_not_allowed: DENIED,
  lifetime_not_allowed: DENIED,
  tenant_not_allowed: DENIED,
  subject_not_allowed: DENIED,
  invalid_grant: { grpc: GrpcCode.UNAUTHENTICATED, http: 400 },
  refresh_token_reused: { grpc: GrpcCode.UNAUTHENTICATED, http: 400 },
  session_revoked: U,
  token_expired: U,
  missing_token: U,
  malformed_token: U,
  unsupported_algorithm: U,
  unknown_key: U,
  bad_signature: U,
  wrong_token_type: U,
  wrong_issuer: U,
  wrong_audience: U,
  token_not_yet_valid: U,
  insufficient_scope: DENIED,
  token_revoked: U,
  subject_revoked: U,
  client_disabled: U,
  key_revoked: U,
  revocation_state_stale: U,
  conflicting_forward_headers: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400 },
  request_timeout: { grpc: GrpcCode.DEADLINE_EXCEEDED, http: 408 },
  not_found: { grpc: GrpcCode.NOT_FOUND, http: 404 },
  already_exists: { grpc: GrpcCode.ALREADY_EXISTS, http: 409 },
  failed_precondition: { grpc: GrpcCode.FAILED_PRECONDITION, http: 409 },
  rate_limited: { grpc: GrpcCode.RESOURCE_EXHAUSTED, http: 429 },
  unavailable: { grpc: GrpcCode.UNAVAILABLE, http: 503 },
  internal: { grpc: GrpcCode.INTERNAL, http: 500 },
  unsupported_token_type: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400 },
  actor_not_allowed: DENIED,
  unsupported_grant_type: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400 },
  assertion_malformed: U,
  assertion_untrusted_issuer: U,
  assertion_unknown_key: U,
  assertion_algorithm_mismatch: U,
  assertion_bad_signature: U,
  assertion_wrong_audience: U,
  assertion_expired: U,
  assertion_not_yet_valid: U,
  assertion_lifetime_too_long: U,
  assertion_subject_mismatch: U,
  assertion_replayed: U,
};

export function grpcCodeOf(code: GatehouseErrorCode): GrpcCode {
  return STATUS_BY_CODE[code].grpc;
}

export function httpStatusOf(code: GatehouseErrorCode): number {
  return STATUS_BY_CODE[code].http;
}
