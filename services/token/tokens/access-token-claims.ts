import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/**
 * Claims of an access token (RFC 9068 `at+jwt`). Names here are registered or ours; a client's
 * custom claims may never overwrite them, or a caller could mint itself another subject or scope.
 */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set([
  "iss",
  "sub",
  "aud",
  "exp",
  "nbf",
  "iat",
  "jti",
  "client_id",
  "scope",
  "sid",
  "sv",
  "tenant",
  "typ",
  "azp",
  "auth_time",
  "acr",
  "amr",
  "cnf",
  "act",
  "may_act",
]);

/**
 * The one reserved claim a client may be granted (listed in its allowed claims): RFC 8693 §4.4
 * `may_act`, the party that may act for the subject in a token exchange.
 */
export const MAY_ACT_CLAIM = "may_act";

const MAX_CUSTOM_CLAIMS_BYTES = 4096;

export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  sid?: string;
  sv?: number;
  tenant?: string;
  [custom: string]: unknown;
}

export interface AccessTokenInput {
  issuer: string;
  subject: string;
  audience: readonly string[];
  clientId: string;
  scopes: readonly string[];
  /** Absent for service tokens, which belong to no session. */
  sessionId?: string;
  sessionVersion?: number;
  tenant?: string | null;
  custom?: Record<string, unknown> | null;
  jti: string;
  nowSeconds: number;
  ttlSeconds: number;
}

export function buildAccessTokenClaims(input: AccessTokenInput): AccessTokenClaims {
  const claims: AccessTokenClaims = {
    ...(input.custom ?? {}),
    iss: input.issuer,
    sub: input.subject,
    aud: input.audience.length === 1 ? input.audience[0]! : [...input.audience],
    exp: input.nowSeconds + input.ttlSeconds,
    iat: input.nowSeconds,
    jti: input.jti,
    client_id: input.clientId,
  };
  if (input.scopes.length > 0) claims.scope = input.scopes.join(" ");
  if (input.sessionId !== undefined) {
    claims.sid = input.sessionId;
    claims.sv = input.sessionVersion ?? 1;
  }
  if (input.tenant) claims.tenant = input.tenant;
  return claims;
}

/**
 * Checks a client's custom claims: allowed names only, no reserved names, at most 4 KiB of JSON.
 * One reserved name may be set by a client that lists it in its allowed claims: `may_act` (RFC 8693
 * §4.4), naming the one party that may act for the subject in a token exchange, as `{ "sub": id }`.
 */
export function checkCustomClaims(custom: Record<string, unknown>, allowed: readonly string[]): void {
  const names = Object.keys(custom);
  const reserved = names.filter(
    (n) => RESERVED_CLAIMS.has(n) && !(n === MAY_ACT_CLAIM && allowed.includes(MAY_ACT_CLAIM)),
  );
  if (reserved.length > 0) {
    throw new GatehouseError(
      "claim_not_allowed",
      `reserved claim names cannot be set: ${reserved.join(", ")}`,
      {
        metadata: { claims: reserved.join(",") },
      },
    );
  }
  const allowedSet = new Set(allowed);
  const refused = names.filter((n) => !allowedSet.has(n));
  if (refused.length > 0) {
    throw new GatehouseError("claim_not_allowed", `this client may not set claims: ${refused.join(", ")}`, {
      metadata: { claims: refused.join(",") },
    });
  }
  if (custom.may_act !== undefined && !isMayAct(custom.may_act)) {
    throw new GatehouseError("invalid_request", 'may_act must be an object { "sub": "<party>" }', {
      metadata: { field: "claims.may_act" },
    });
  }
  if (Buffer.byteLength(JSON.stringify(custom)) > MAX_CUSTOM_CLAIMS_BYTES) {
    throw new GatehouseError("invalid_request", `custom claims exceed ${MAX_CUSTOM_CLAIMS_BYTES} bytes`);
  }
}

function isMayAct(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  const sub = (value as Record<string, unknown>).sub;
  return keys.length === 1 && typeof sub === "string" && sub !== "";
}
