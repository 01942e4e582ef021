/** RFC 8693 §3 token type identifiers we accept: our access tokens are JWTs, so both name them. */
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
export const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
export const TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange";

/**
 * A token-exchange request as the flow takes it, whichever surface it came from (the Exchange RPC,
 * or the RFC 8693 form of `/oauth2/token`, read by oauth/grants/token-exchange.ts).
 * An empty token type means an access token.
 */
export interface TokenExchangeRequest {
  subjectToken: string;
  subjectTokenType: string;
  /** The acting service's own token; absent: the authenticated client is the actor. */
  actorToken: string;
  actorTokenType: string;
  /** Audience names and RFC 8707 resource URIs: the new token's `aud` is their union. */
  audience: readonly string[];
  resource: readonly string[];
  scopes: readonly string[];
  requestedTokenType: string;
}

export interface TokenExchangeResult {
  accessToken: string;
  /** Always {@link ACCESS_TOKEN_TYPE} (RFC 8693 `issued_token_type`). */
  issuedTokenType: string;
  tokenType: "Bearer";
  /** `exp`, epoch seconds. */
  expiresAt: number;
  /** Seconds from now to `exp` (RFC 6749 `expires_in`). */
  expiresIn: number;
  scopes: string[];
  audience: string[];
  /** The new token's actor chain, outermost (the actor of this exchange) first. */
  actors: string[];
}
