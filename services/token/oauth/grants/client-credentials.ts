import { create } from "@bufbuild/protobuf";
import { IssueServiceTokenRequestSchema } from "../../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../../shared/errors/gatehouse-error.ts";
import { issueServiceToken } from "../../flows/issue-flow.ts";
import type { FormParams } from "../form-body.ts";
import { expiresIn, type Grant, scopeMember, scopesOf } from "./grant.ts";

/** `client_credentials` (RFC 6749 §4.4): IssueServiceToken, the calling service's own token. */
export const clientCredentialsGrant: Grant = {
  method: "IssueServiceToken",
  async handle(deps, caller, form) {
    const issued = await issueServiceToken(
      deps,
      caller,
      create(IssueServiceTokenRequestSchema, { audience: requestedAudience(form), scopes: scopesOf(form) }),
    );
    return {
      access_token: issued.accessToken ?? "",
      token_type: "Bearer",
      expires_in: expiresIn(deps, issued.accessTokenExpiresAt),
      ...scopeMember(issued.scopes),
    };
  },
};

/**
 * The audiences asked for: `audience` values (RFC 8693 §2.1, logical names as in the client's
 * allowed audiences) or `resource` values (RFC 8707, absolute URIs without a fragment), not both.
 * Either kind is checked against the client's allowed audiences by the flow; a refusal there is
 * `invalid_target`, as is a malformed resource here.
 */
function requestedAudience(form: FormParams): string[] {
  const audience = form.all("audience");
  const resource = form.all("resource");
  if (audience.length > 0 && resource.length > 0) {
    throw new GatehouseError("invalid_request", "send audience or resource, not both", {
      metadata: { field: "resource" },
    });
  }
  for (const r of resource) {
    if (!URL.canParse(r) || r.includes("#")) {
      throw new GatehouseError(
        "audience_not_allowed",
        "resource must be an absolute URI without a fragment",
        {
          metadata: { field: "resource" },
        },
      );
    }
  }
  return audience.length > 0 ? audience : resource;
}
