import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

export type AuthorizationValue = string | readonly string[] | null | undefined;

const BEARER = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The bearer token of an `Authorization` value (RFC 6750 §2.1): exactly `Bearer <token>`, the scheme
 * case-insensitive. No header, or another scheme: `missing_token`; several headers, or a bearer
 * value of the wrong shape: `malformed_token`. Its own module, free of Connect, so the sidecar's
 * servers and the in-process authenticator share it without the sidecar loading Connect.
 */
export function bearerToken(authorization: AuthorizationValue): string {
  if (authorization === undefined || authorization === null) throw missing();
  if (typeof authorization !== "string") {
    // Stryker disable next-line ConditionalExpression: an empty list would read its undefined first entry: missing either way
    if (authorization.length === 0) throw missing();
    if (authorization.length > 1) {
      throw new GatehouseError("malformed_token", "more than one Authorization header");
    }
    return bearerToken(authorization[0]);
  }
  const value = authorization.trim();
  const space = value.indexOf(" ");
  const scheme = space === -1 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== "bearer") throw missing();
  const token = value.slice(space + 1);
  if (space === -1 || !BEARER.test(token)) {
    throw new GatehouseError("malformed_token", 'Authorization must be "Bearer <token>"');
  }
  return token;
}

function missing(): GatehouseError {
  return new GatehouseError("missing_token", "no bearer token");
}
