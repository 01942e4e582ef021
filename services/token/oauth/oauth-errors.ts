import type http from "node:http";
import type { GatehouseErrorCode } from "../../shared/errors/codes.ts";
import type { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/** The `error` values the OAuth endpoints answer with (RFC 6749 §5.2, RFC 8707 §2, RFC 7009 §2.2.1). */
type OAuthErrorName =
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "invalid_target"
  | "unsupported_token_type"
  | "temporarily_unavailable"
  | "server_error";

/**
 * The errors a grant may answer with in place of the shared mapping: all 400s. The codes answered
 * with another status (client authentication, load, outages) are the same for every grant.
 */
export type GrantErrorName = Exclude<
  OAuthErrorName,
  "invalid_client" | "temporarily_unavailable" | "server_error"
>;

/** A grant's own error names for some codes (grants/grant.ts `errorOf`); null defers to BY_CODE. */
export type GrantErrorMapping = (code: GatehouseErrorCode) => GrantErrorName | null;

interface OAuthError {
  error: OAuthErrorName;
  status: number;
}

const BAD = (error: OAuthErrorName): OAuthError => ({ error, status: 400 });
const INVALID_CLIENT: OAuthError = { error: "invalid_client", status: 401 };

/**
 * Our error codes as OAuth errors. The code itself travels in `error_description`, so a caller that
 * knows Gatehouse can still tell a reused refresh token from an expired one. 6749 §5.2 names no error
 * for load; `temporarily_unavailable` (its authorization-endpoint twin) with 429/503 and
 * `retry-after` is what OAuth clients already understand.
 */
const BY_CODE: Partial<Record<GatehouseErrorCode, OAuthError>> = {
  invalid_request: BAD("invalid_request"),
  invalid_client: INVALID_CLIENT,
  unauthorized_client: BAD("unauthorized_client"),
  tenant_not_allowed: BAD("unauthorized_client"),
  subject_not_allowed: BAD("unauthorized_client"),
  claim_not_allowed: BAD("unauthorized_client"),
  lifetime_not_allowed: BAD("unauthorized_client"),
  audience_not_allowed: BAD("invalid_target"),
  scope_not_allowed: BAD("invalid_scope"),
  insufficient_scope: BAD("invalid_scope"),
  invalid_grant: BAD("invalid_grant"),
  refresh_token_reused: BAD("invalid_grant"),
  session_revoked: BAD("invalid_grant"),
  token_expired: BAD("invalid_grant"),
  unsupported_grant_type: BAD("unsupported_grant_type"),
  unsupported_token_type: BAD("unsupported_token_type"),
  rate_limited: { error: "temporarily_unavailable", status: 429 },
  unavailable: { error: "temporarily_unavailable", status: 503 },
  internal: { error: "server_error", status: 500 },
  assertion_malformed: INVALID_CLIENT,
  assertion_untrusted_issuer: INVALID_CLIENT,
  assertion_unknown_key: INVALID_CLIENT,
  assertion_algorithm_mismatch: INVALID_CLIENT,
  assertion_bad_signature: INVALID_CLIENT,
  assertion_wrong_audience: INVALID_CLIENT,
  assertion_expired: INVALID_CLIENT,
  assertion_not_yet_valid: INVALID_CLIENT,
  assertion_lifetime_too_long: INVALID_CLIENT,
  assertion_subject_mismatch: INVALID_CLIENT,
  assertion_replayed: INVALID_CLIENT,
};

/** The OAuth error for `code`: the grant's own name when it has one, else the shared one. */
export function oauthErrorOf(code: GatehouseErrorCode, grantErrorOf?: GrantErrorMapping): OAuthError {
  const own = grantErrorOf?.(code) ?? null;
  if (own !== null) return BAD(own);
  return BY_CODE[code] ?? BAD("invalid_request");
}

/** Realm named in `WWW-Authenticate` on `invalid_client` answers. */
const CLIENT_AUTH_REALM = "gatehouse";

/**
 * Writes an OAuth error answer: JSON `{error, error_description}` with `no-store`. `invalid_client`
 * is a 401 with `WWW-Authenticate: Basic` (RFC 6749 §5.2: required when the client used Basic; an
 * HTTP 401 always names a scheme). Retry hints become `retry-after`. The description is our public
 * message only, never the private cause. `grantErrorOf` is the grant's own mapping, once known.
 */
export function sendOAuthError(
  res: http.ServerResponse,
  err: GatehouseError,
  requestId: string,
  grantErrorOf?: GrantErrorMapping,
): void {
  const { error, status } = oauthErrorOf(err.code, grantErrorOf);
  const headers: http.OutgoingHttpHeaders = {
    "content-type": "application/json",
    "cache-control": "no-store",
    pragma: "no-cache",
    "x-request-id": requestId,
  };
  if (error === "invalid_client") headers["www-authenticate"] = `Basic realm="${CLIENT_AUTH_REALM}"`;
  if (err.retryAfterMs !== undefined)
    headers["retry-after"] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
  const body = JSON.stringify({ error, error_description: `${err.code}: ${err.message}` });
  headers["content-length"] = Buffer.byteLength(body);
  res.writeHead(status, headers);
  res.end(body);
}
