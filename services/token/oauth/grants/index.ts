import { clientCredentialsGrant } from "./client-credentials.ts";
import type { Grant } from "./grant.ts";
import { refreshTokenGrant } from "./refresh-token.ts";

export type { Grant, TokenResponse } from "./grant.ts";

/**
 * The token endpoint's grant types, one module each. A `grant_type` not listed here is
 * `unsupported_grant_type`, `urn:ietf:params:oauth:grant-type:token-exchange` included for now.
 */
export const GRANTS: Readonly<Record<string, Grant>> = {
  client_credentials: clientCredentialsGrant,
  refresh_token: refreshTokenGrant,
  // urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693) plugs in here with the exchange flow.
};

/** The `grant_types_supported` of the server metadata: exactly the table above. */
export const SUPPORTED_GRANT_TYPES: readonly string[] = Object.keys(GRANTS);

/** The grant for a `grant_type`, or undefined; own keys only, so `constructor` is no grant. */
export function grantFor(grantType: string): Grant | undefined {
  return Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType] : undefined;
}
