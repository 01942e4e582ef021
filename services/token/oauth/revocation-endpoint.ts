import { create } from "@bufbuild/protobuf";
import { RevokeRequestSchema } from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { revoke } from "../flows/revoke-flow.ts";
import { REFRESH_TOKEN_PREFIX } from "../tokens/refresh-token-format.ts";
import { clientAuthentication } from "./client-authentication.ts";
import { readFormBody } from "./form-body.ts";
import { authenticateClient, type OAuthDeps } from "./oauth-deps.ts";
import type { OAuthHandler } from "./oauth-endpoint.ts";

/** The `token_type_hint` values we know (RFC 7009 §2.1); we revoke both kinds. */
const HINTS = new Set(["access_token", "refresh_token"]);

/**
 * `POST /oauth2/revoke` (RFC 7009): the Revoke flow on the presented token. The token's prefix
 * says which kind it is, so the hint is only checked for being one we know (another kind is
 * `unsupported_token_type`, §2.2.1). Unknown, expired, invalid or other clients' tokens answer 200
 * like revoked ones (§2.2): the client cannot act on the difference, and it must learn nothing
 * about tokens that are not its own.
 */
export function revocationEndpoint(deps: OAuthDeps): OAuthHandler {
  return async (ctx, req, res) => {
    const form = await readFormBody(req);
    const auth = clientAuthentication(req, form);
    const token = form.get("token");
    if (token === undefined) {
      throw new GatehouseError("invalid_request", "token is required", { metadata: { field: "token" } });
    }
    const hint = form.get("token_type_hint");
    if (hint !== undefined && !HINTS.has(hint)) {
      throw new GatehouseError(
        "unsupported_token_type",
        "token_type_hint names a kind of token this server does not issue",
        {
          metadata: { field: "token_type_hint" },
        },
      );
    }
    const target = token.startsWith(REFRESH_TOKEN_PREFIX)
      ? ({ case: "refreshToken", value: token } as const)
      : ({ case: "accessToken", value: token } as const);
    await deps.gate("Revoke", authenticateClient(deps, auth), ctx.requestId, (caller) =>
      revoke(deps, caller, create(RevokeRequestSchema, { target })).catch((err: unknown) => {
        if (isInvalidToken(err)) return undefined;
        throw err;
      }),
    );
    res.writeHead(200, { "cache-control": "no-store", pragma: "no-cache", "content-length": 0 });
    res.end();
  };
}

/** The flow's refusal of a token that is not a well-formed one of ours: RFC 7009 answers 200 to that. */
function isInvalidToken(err: unknown): boolean {
  if (!(err instanceof GatehouseError) || err.code !== "invalid_request") return false;
  return err.metadata.field === "refresh_token" || err.metadata.field === "access_token";
}
