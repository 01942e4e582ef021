import type http from "node:http";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { type BasicCredentials, parseBasicCredentials } from "../clients/basic-credentials.ts";
import type { FormParams } from "./form-body.ts";

/** The client authentication methods the OAuth endpoints accept (RFC 8414 `*_auth_methods_supported`). */
export const CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"] as const;

export type ClientAuthentication =
  | { method: (typeof CLIENT_AUTH_METHODS)[number]; credentials: BasicCredentials }
  | { method: "none" };

/**
 * Which client credentials a form request carries: `client_secret_basic` (RFC 6749 §2.3.1, the
 * `authorization: Basic` header, id and secret form-urlencoded inside) or `client_secret_post`
 * (`client_id` and `client_secret` in the body). Using both at once is refused with
 * `invalid_request` (§2.3: one method per request); `none` is left for the caller authenticator to
 * refuse with `invalid_client`, as a wrong secret is.
 */
export function clientAuthentication(req: http.IncomingMessage, form: FormParams): ClientAuthentication {
  const header = req.headers.authorization;
  const postedId = form.get("client_id");
  const postedSecret = form.get("client_secret");
  if (header !== undefined) {
    if (postedSecret !== undefined) {
      throw new GatehouseError(
        "invalid_request",
        "use one client authentication method: the authorization header or client_secret, not both",
      );
    }
    const credentials = parseBasicCredentials(header);
    if (credentials === null) {
      throw new GatehouseError(
        "invalid_client",
        "client authentication failed: authorization must be Basic base64(client_id:client_secret)",
      );
    }
    // §3.2.1 lets a client name itself in the body too; a different name is a confused request.
    if (postedId !== undefined && postedId !== credentials.clientId) {
      throw new GatehouseError("invalid_request", "client_id does not match the authorization header", {
        metadata: { field: "client_id" },
      });
    }
    return { method: "client_secret_basic", credentials };
  }
  if (postedId !== undefined && postedSecret !== undefined) {
    return { method: "client_secret_post", credentials: { clientId: postedId, secret: postedSecret } };
  }
  return { method: "none" };
}
