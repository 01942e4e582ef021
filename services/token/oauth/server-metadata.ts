import { VERIFY_ALGORITHMS } from "../../sidecar/jwks/key-algorithm.ts";
import { SIGNING_ALGORITHMS } from "../keys/signing-key-material.ts";
import { CLIENT_AUTH_METHODS } from "./client-authentication.ts";
import { SUPPORTED_GRANT_TYPES } from "./grants/index.ts";

/** Where the OAuth endpoints live, relative to the issuer (the routes in oauth-routes.ts). */
export const OAUTH_PATHS = {
  token: "/oauth2/token",
  introspection: "/oauth2/introspect",
  revocation: "/oauth2/revoke",
  jwks: "/.well-known/jwks.json",
  metadata: "/.well-known/oauth-authorization-server",
} as const;

/**
 * RFC 8414 authorization server metadata, every member built from what the code serves.
 * - No `authorization_endpoint`: §2 requires one only for grants that use it, and none of ours does.
 * - `response_types_supported` is REQUIRED and takes RFC 7591 `response_types` values; a server
 *   without an authorization endpoint returns no response from one, which is the registered
 *   response type `none` (OAuth 2.0 Multiple Response Type Encoding Practices §4). An empty array
 *   would fail validators that (rightly) treat the member as required to say something.
 * - No `scopes_supported`: scopes are per client (its allowed list), not one server-wide set, and
 *   §2 lets a server leave some or all unadvertised.
 * - The signing algorithms are every algorithm a signing key may have; access tokens and signed
 *   introspection answers (RFC 9701) are signed by the active key.
 * No OpenID Connect discovery document: we issue no ID tokens.
 */
export function authorizationServerMetadata(issuer: string): Record<string, unknown> {
  const base = issuer.replace(/\/+$/, "");
  const methods = [...CLIENT_AUTH_METHODS];
  return {
    issuer,
    token_endpoint: `${base}${OAUTH_PATHS.token}`,
    introspection_endpoint: `${base}${OAUTH_PATHS.introspection}`,
    revocation_endpoint: `${base}${OAUTH_PATHS.revocation}`,
    jwks_uri: `${base}${OAUTH_PATHS.jwks}`,
    grant_types_supported: [...SUPPORTED_GRANT_TYPES],
    response_types_supported: ["none"],
    token_endpoint_auth_methods_supported: methods,
    introspection_endpoint_auth_methods_supported: methods,
    revocation_endpoint_auth_methods_supported: methods,
    // Required beside private_key_jwt (§2): the algorithms a client assertion may be signed with.
    token_endpoint_auth_signing_alg_values_supported: [...VERIFY_ALGORITHMS],
    introspection_endpoint_auth_signing_alg_values_supported: [...VERIFY_ALGORITHMS],
    revocation_endpoint_auth_signing_alg_values_supported: [...VERIFY_ALGORITHMS],
    introspection_signing_alg_values_supported: [...SIGNING_ALGORITHMS],
    access_token_signing_alg_values_supported: [...SIGNING_ALGORITHMS],
  };
}
