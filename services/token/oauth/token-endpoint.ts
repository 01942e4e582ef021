import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { clientAuthentication } from "./client-authentication.ts";
import { readFormBody } from "./form-body.ts";
import { grantFor } from "./grants/index.ts";
import { authenticateClient, type OAuthDeps } from "./oauth-deps.ts";
import { type OAuthHandler, sendOAuthJson } from "./oauth-endpoint.ts";

/**
 * `POST /oauth2/token` (RFC 6749 §3.2): picks the grant by `grant_type`, then runs it as its
 * TokenService method through the caller gate, so roles, limits and audit are the RPC's.
 */
export function tokenEndpoint(deps: OAuthDeps): OAuthHandler {
  return async (ctx, req, res) => {
    const form = await readFormBody(req);
    const auth = clientAuthentication(req, form);
    const grantType = form.get("grant_type");
    if (grantType === undefined) {
      throw new GatehouseError("invalid_request", "grant_type is required", {
        metadata: { field: "grant_type" },
      });
    }
    const grant = grantFor(grantType);
    if (grant === undefined) {
      throw new GatehouseError(
        "unsupported_grant_type",
        "grant_type is not one this server supports (see grant_types_supported)",
        {
          metadata: { field: "grant_type" },
        },
      );
    }
    ctx.method = grant.method;
    ctx.grantErrorOf = grant.errorOf;
    const answer = await deps.gate(grant.method, authenticateClient(deps, auth), ctx.requestId, (caller) =>
      grant.handle(deps, caller, form),
    );
    sendOAuthJson(res, answer);
  };
}
