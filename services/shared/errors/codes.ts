/**
 * Every reason a Gatehouse operation can fail, as a closed union of stable strings. Callers switch on
 * `err.code`; the strings travel on the wire (`google.rpc.ErrorInfo.reason`, the JSON body of HTTP
 * answers, metrics labels) and must never change meaning once released.
 */
export const ERROR_CODES = [
  // Request shape
  "invalid_request",
  "invalid_path",
  "ambiguous_path",
  "path_too_long",
  // Caller (client) authentication and authorization
  "invalid_client",
  "unauthorized_client",
  "audience_not_allowed",
  "scope_not_allowed",
  "claim_not_allowed",
  "lifetime_not_allowed",
  "tenant_not_allowed",
  "subject_not_allowed",
  // Grants and sessions (token service)
  "invalid_grant",
  "refresh_token_reused",
  "session_revoked",
  "token_expired",
  // Access-token verification (sidecar and in-process verifier)
  "missing_token",
  "malformed_token",
  "unsupported_algorithm",
  "unknown_key",
  "bad_signature",
  "wrong_token_type",
  "wrong_issuer",
  "wrong_audience",
  "token_not_yet_valid",
  "insufficient_scope",
  "token_revoked",
  "subject_revoked",
  "client_disabled",
  "key_revoked",
  "revocation_state_stale",
  // Sidecar front ends
  "conflicting_forward_headers",
  "request_timeout",
  // Resources and operations
  "not_found",
  "already_exists",
  "failed_precondition",
  "rate_limited",
  "unavailable",
  "internal",
  // Token exchange (RFC 8693), actor policies, OAuth endpoints (RFC 6749 §5.2, RFC 7009 §2.2.1)
  "unsupported_token_type",
  "actor_not_allowed",
  "unsupported_grant_type",
  // Client assertions (RFC 7523 private_key_jwt, federated workload identity): why one was refused.
  // OAuth answers them all as `invalid_client` with the reason in error_description.
  "assertion_malformed",
  "assertion_untrusted_issuer",
  "assertion_unknown_key",
  "assertion_algorithm_mismatch",
  "assertion_bad_signature",
  "assertion_wrong_audience",
  "assertion_expired",
  "assertion_not_yet_valid",
  "assertion_lifetime_too_long",
  "assertion_subject_mismatch",
  "assertion_replayed",
] as const;

export type GatehouseErrorCode = (typeof ERROR_CODES)[number];

const known = new Set<string>(ERROR_CODES);

export function isGatehouseErrorCode(value: unknown): value is GatehouseErrorCode {
  return typeof value === "string" && known.has(value);
}
