import type { GatehouseErrorCode } from "../../shared/errors/codes.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/** RFC 8693 §3 token type identifiers we accept: our access tokens are JWTs, so both name them. */
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
export const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
export const TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange";

/**
 * A token-exchange request as the flow takes it, whichever surface it came from (the Exchange RPC,
 * or the RFC 8693 form of `/oauth2/token` through {@link tokenExchangeRequestFromForm}).
 * An empty token type means an access token.
 */
export interface TokenExchangeRequest {
  subjectToken: string;
  subjectTokenType: string;
  /** The acting service's own token; absent: the authenticated client is the actor. */
  actorToken: string;
  actorTokenType: string;
  /** Audience names and RFC 8707 resource URIs: the new token's `aud` is their union. */
  audience: readonly string[];
  resource: readonly string[];
  scopes: readonly string[];
  requestedTokenType: string;
}

export interface TokenExchangeResult {
  accessToken: string;
  /** Always {@link ACCESS_TOKEN_TYPE} (RFC 8693 `issued_token_type`). */
  issuedTokenType: string;
  tokenType: "Bearer";
  /** `exp`, epoch seconds. */
  expiresAt: number;
  /** Seconds from now to `exp` (RFC 6749 `expires_in`). */
  expiresIn: number;
  scopes: string[];
  audience: string[];
  /** The new token's actor chain, outermost (the actor of this exchange) first. */
  actors: string[];
}

const SINGLE = [
  "subject_token",
  "subject_token_type",
  "actor_token",
  "actor_token_type",
  "scope",
  "requested_token_type",
] as const;

/**
 * Reads RFC 8693 §2.1 form parameters (grant_type already dispatched on) into a request. Only the
 * shape is judged here; the flow judges the tokens and what may be granted. Errors are typed;
 * {@link oauthErrorOf} names the RFC 6749 error each one answers with.
 */
export function tokenExchangeRequestFromForm(form: URLSearchParams): TokenExchangeRequest {
  for (const name of SINGLE) {
    if (form.getAll(name).length > 1) throw invalid(name, "must not be repeated");
  }
  const subjectToken = form.get("subject_token") ?? "";
  const subjectTokenType = form.get("subject_token_type") ?? "";
  if (subjectToken === "") throw invalid("subject_token", "is required");
  if (subjectTokenType === "") throw invalid("subject_token_type", "is required");
  const actorToken = form.get("actor_token") ?? "";
  const actorTokenType = form.get("actor_token_type") ?? "";
  // §2.1: required with an actor token (the flow refuses one without an actor token).
  if (actorToken !== "" && actorTokenType === "") throw invalid("actor_token_type", "is required");
  const scope = form.get("scope") ?? "";
  return {
    subjectToken,
    subjectTokenType,
    actorToken,
    actorTokenType,
    audience: form.getAll("audience"),
    // RFC 8707 resources are matched against the client's audiences as they are: one that is not
    // among them (a malformed URI cannot be) is refused as invalid_target by the flow.
    resource: form.getAll("resource"),
    scopes: scope === "" ? [] : scope.split(" "),
    requestedTokenType: form.get("requested_token_type") ?? "",
  };
}

/**
 * The RFC 6749 §5.2 / RFC 8693 §2.2.2 `error` for an exchange that failed with `code`, or null for
 * the codes every grant shares (client authentication, load, outages), which the token endpoint maps
 * once for all grants. A subject or actor token that is invalid, expired, revoked or unacceptable by
 * policy (`may_act`) is `invalid_request`: RFC 8693 §2.2.2 asks for that, not `invalid_grant`.
 */
export function oauthErrorOf(code: GatehouseErrorCode): string | null {
  switch (code) {
    case "audience_not_allowed":
      return "invalid_target";
    case "scope_not_allowed":
      return "invalid_scope";
    case "unsupported_token_type":
      return "unsupported_token_type";
    case "invalid_client":
    case "unauthorized_client":
    case "rate_limited":
    case "unavailable":
    case "internal":
      return null;
    default:
      return "invalid_request";
  }
}

function invalid(field: string, problem: string): GatehouseError {
  return new GatehouseError("invalid_request", `${field} ${problem}`, { metadata: { field } });
}
