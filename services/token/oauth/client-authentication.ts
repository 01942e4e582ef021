import type http from "node:http";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { JWT_BEARER_ASSERTION_TYPE } from "../assertions/assertion-rules.ts";
import { type BasicCredentials, parseBasicCredentials } from "../clients/basic-credentials.ts";
import type { FormParams } from "./form-body.ts";

/**
 * The client authentication methods the OAuth endpoints accept (RFC 8414 `*_auth_methods_supported`).
 * `private_key_jwt` names the wire form of every client assertion, whether the client's own keys or
 * a trusted platform issuer (a Kubernetes service-account token) signed it.
 */
export const CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"] as const;

export type ClientAuthentication =
  | { method: "client_secret_basic" | "client_secret_post"; credentials: BasicCredentials }
  | { method: "private_key_jwt"; assertion: string; clientId: string | undefined }
  | { method: "none" };

const oneMethod = (what: string) =>
  new GatehouseError("invalid_request", `use one client authentication method: ${what}, not both`);

/**
 * Which client credentials a form request carries: `client_secret_basic` (RFC 6749 §2.3.1, the
 * `authorization: Basic` header, id and secret form-urlencoded inside), `client_secret_post`
 * (`client_id` and `client_secret` in the body) or a client assertion (RFC 7521 §4.2:
 * `client_assertion_type` jwt-bearer and `client_assertion`, `client_id` optional). Using two at
 * once is refused with `invalid_request` (§2.3: one method per request); `none` is left for the
 * caller authenticator to refuse with `invalid_client`, as a wrong secret is.
 */
export function clientAuthentication(req: http.IncomingMessage, form: FormParams): ClientAuthentication {
  const header = req.headers.authorization;
  const postedId = form.get("client_id");
  const postedSecret = form.get("client_secret");
  const assertionType = form.get("client_assertion_type");
  const assertion = form.get("client_assertion");
  if (assertionType !== undefined || assertion !== undefined) {
    if (header !== undefined || postedSecret !== undefined) {
      throw oneMethod("a client assertion or a client secret");
    }
    if (assertionType !== JWT_BEARER_ASSERTION_TYPE) {
      throw new GatehouseError(
        "invalid_request",
        `client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`,
        {
          metadata: { field: "client_assertion_type" },
        },
      );
    }
    if (assertion === undefined || assertion === "") {
      throw new GatehouseError("invalid_request", "client_assertion is required with client_assertion_type", {
        metadata: { field: "client_assertion" },
      });
    }
    return { method: "private_key_jwt", assertion, clientId: postedId };
  }
  if (header !== undefined) {
    if (postedSecret !== undefined) throw oneMethod("the authorization header or client_secret");
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
