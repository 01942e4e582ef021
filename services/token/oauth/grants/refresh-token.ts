import { create } from "@bufbuild/protobuf";
import { RefreshRequestSchema } from "../../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../../shared/errors/gatehouse-error.ts";
import { refresh } from "../../flows/refresh-flow.ts";
import { refreshTokenShapeProblem } from "../../tokens/refresh-token-format.ts";
import { expiresIn, type Grant, scopeMember, scopesOf } from "./grant.ts";

/**
 * `refresh_token` (RFC 6749 §6): the Refresh flow, with its rotation, grace window, reuse detection
 * and scope narrowing (`scope`).
 */
export const refreshTokenGrant: Grant = {
  method: "Refresh",
  async handle(deps, caller, form) {
    const refreshToken = form.get("refresh_token");
    if (refreshToken === undefined) {
      throw new GatehouseError("invalid_request", "refresh_token is required", {
        metadata: { field: "refresh_token" },
      });
    }
    // Over RPC a garbled token is a malformed request; to OAuth it is a grant that is not valid (§5.2).
    const problem = refreshTokenShapeProblem(refreshToken);
    if (problem) throw new GatehouseError("invalid_grant", problem);
    // The session keeps the audiences it was issued with; narrowing them is not something Refresh does.
    if (form.has("audience") || form.has("resource")) {
      throw new GatehouseError("audience_not_allowed", "a refresh cannot change the session's audience", {
        metadata: { field: "resource" },
      });
    }
    const refreshed = await refresh(
      deps,
      caller,
      create(RefreshRequestSchema, { refreshToken, scopes: scopesOf(form) }),
    );
    return {
      access_token: refreshed.accessToken ?? "",
      token_type: "Bearer",
      expires_in: expiresIn(deps, refreshed.accessTokenExpiresAt),
      refresh_token: refreshed.refreshToken ?? "",
      ...scopeMember(refreshed.scopes),
    };
  },
};
