import { TOKEN_EXCHANGE_GRANT_TYPE } from "../../flows/token-exchange-request.ts";
import { clientCredentialsGrant } from "./client-credentials.ts";
import type { Grant } from "./grant.ts";
import { refreshTokenGrant } from "./refresh-token.ts";
import { tokenExchangeGrant } from "./token-exchange.ts";

export type { Grant } from "./grant.ts";

/**
 * The token endpoint's grant types, one module each. A `grant_type` not listed here is
 * `unsupported_grant_type`.
 */
const GRANTS: Readonly<Record<string, Grant>> = {
  client_credentials: clientCredentialsGrant,
  refresh_token: refreshTokenGrant,
  [TOKEN_EXCHANGE_GRANT_TYPE]: tokenExchangeGrant,
};

/** The `grant_types_supported` of the server metadata: exactly the table above. */
export const SUPPORTED_GRANT_TYPES: readonly string[] = Object.keys(GRANTS);

/** The grant for a `grant_type`, or undefined; own keys only, so `constructor` is no grant. */
export function grantFor(grantType: string): Grant | undefined {
  return Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType] : undefined;
}
