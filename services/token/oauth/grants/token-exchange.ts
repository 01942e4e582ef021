import type { GatehouseErrorCode } from "../../../shared/errors/codes.ts";
import { GatehouseError } from "../../../shared/errors/gatehouse-error.ts";
import { exchangeToken } from "../../flows/token-exchange-flow.ts";
import type { TokenExchangeRequest } from "../../flows/token-exchange-request.ts";
import type { FormParams } from "../form-body.ts";
import type { GrantErrorName } from "../oauth-errors.ts";
import { type Grant, scopeMember, scopesOf } from "./grant.ts";

/**
 * `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): the Exchange flow, answered per
 * §2.2.1 and refused per §2.2.2.
 */
export const tokenExchangeGrant: Grant = {
  method: "Exchange",
  async handle(deps, caller, form) {
    const exchanged = await exchangeToken(deps, caller, tokenExchangeRequestFromForm(form));
    return {
      access_token: exchanged.accessToken,
      issued_token_type: exchanged.issuedTokenType,
      // §2.2.1: N_A is for tokens that are not access tokens; ours is one, used as a bearer token.
      token_type: exchanged.tokenType,
      expires_in: exchanged.expiresIn,
      ...scopeMember(exchanged.scopes),
    };
  },
  errorOf: exchangeErrorOf,
};

/**
 * Reads RFC 8693 §2.1 form parameters (grant_type already dispatched on) into a request. Only the
 * shape is judged here (the form reader has refused repeats of anything but `audience` and
 * `resource`); the flow judges the tokens and what may be granted.
 */
export function tokenExchangeRequestFromForm(form: FormParams): TokenExchangeRequest {
  const subjectToken = form.get("subject_token");
  if (subjectToken === undefined) throw invalid("subject_token", "is required");
  const subjectTokenType = form.get("subject_token_type");
  if (subjectTokenType === undefined) throw invalid("subject_token_type", "is required");
  const actorToken = form.get("actor_token") ?? "";
  const actorTokenType = form.get("actor_token_type") ?? "";
  // §2.1: required with an actor token (the flow refuses one without an actor token).
  if (actorToken !== "" && actorTokenType === "") throw invalid("actor_token_type", "is required");
  return {
    subjectToken,
    subjectTokenType,
    actorToken,
    actorTokenType,
    audience: form.all("audience"),
    // RFC 8707 resources are matched against the client's audiences as they are: one that is not
    // among them (a malformed URI cannot be) is refused as invalid_target by the flow.
    resource: form.all("resource"),
    scopes: scopesOf(form),
    requestedTokenType: form.get("requested_token_type") ?? "",
  };
}

/**
 * The RFC 8693 §2.2.2 `error` for an exchange that failed with `code`, or null for the codes every
 * grant shares (client authentication, roles, load, outages), which oauth-errors.ts maps once.
 * §2.2.2 says a request that is not valid, or a subject or actor token that is invalid for any
 * reason (expired, revoked, not ours, of a type we do not take) or unacceptable by policy
 * (`may_act`, the client's tenants and subjects), MUST be `invalid_request`, where RFC 6749 would
 * say `invalid_grant`; an audience the server will not issue for SHOULD be `invalid_target`; other
 * RFC 6749 errors may be used where they fit, as `invalid_scope` does for scopes beyond the
 * subject token's.
 */
export function exchangeErrorOf(code: GatehouseErrorCode): GrantErrorName | null {
  switch (code) {
    case "audience_not_allowed":
      return "invalid_target";
    case "scope_not_allowed":
      return "invalid_scope";
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
