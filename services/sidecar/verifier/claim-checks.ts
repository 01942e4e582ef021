import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { Identity, Requirement } from "./identity.ts";

/** A token whose signature and claim types checked out: what the verified-token cache keeps. */
export interface VerifiedToken {
  readonly identity: Identity;
  readonly issuer: string;
  /** `nbf` in epoch ms, when present. */
  readonly notBeforeMs: number | undefined;
}

const NO_SCOPES: readonly string[] = Object.freeze([]);

/**
 * Reads the claims of a signature-checked payload into an Identity; a claim of the wrong type is
 * `malformed_token`. Required: `iss`, `sub` (non-empty), `aud` (string or non-empty string array),
 * `exp` and `iat` (numbers), `jti`, `client_id`; optional: `nbf` (number), `scope` (string), `sid`
 * (then `sv`, an integer, is required too), `tenant` (string), `act` (an RFC 8693 actor chain:
 * objects with a non-empty string `sub`, nested in `act`, at most {@link MAX_ACTORS} deep).
 */
export function readClaims(payload: Record<string, unknown>, kid: string, token?: string): VerifiedToken {
  const { iss, sub, aud, exp, iat, nbf, jti, client_id, scope, sid, sv, tenant, act } = payload;
  if (typeof iss !== "string") throw malformed("iss");
  if (!isNonEmptyString(sub)) throw malformed("sub");
  let audience: readonly string[];
  if (typeof aud === "string" && aud !== "") audience = [aud];
  else if (Array.isArray(aud) && aud.length > 0 && aud.every(isNonEmptyString)) audience = aud;
  else throw malformed("aud");
  if (!isTime(exp)) throw malformed("exp");
  if (!isTime(iat)) throw malformed("iat");
  if (nbf !== undefined && !isTime(nbf)) throw malformed("nbf");
  if (!isNonEmptyString(jti)) throw malformed("jti");
  if (!isNonEmptyString(client_id)) throw malformed("client_id");
  if (scope !== undefined && typeof scope !== "string") throw malformed("scope");
  if (sid !== undefined && !isNonEmptyString(sid)) throw malformed("sid");
  if ((sid !== undefined || sv !== undefined) && !Number.isSafeInteger(sv)) throw malformed("sv");
  if (tenant !== undefined && typeof tenant !== "string") throw malformed("tenant");
  const actors = act === undefined ? undefined : readActors(act);

  const identity: { -readonly [K in keyof Identity]: Identity[K] } = {
    subject: sub,
    clientId: client_id,
    // Stryker disable next-line ConditionalExpression,StringLiteral: "" only skips an allocation; splitScopes("") is [] too
    scopes: scope === undefined || scope === "" ? NO_SCOPES : Object.freeze(splitScopes(scope)),
    audience: Object.freeze(audience),
    jti,
    expiresAt: exp,
    issuedAt: iat,
    kid,
    claims: deepFreeze(payload),
  };
  if (sid !== undefined) {
    identity.sessionId = sid;
    identity.sessionVersion = sv as number;
  }
  if (tenant !== undefined) identity.tenant = tenant;
  if (actors !== undefined) identity.actors = Object.freeze(actors);
  if (token !== undefined) identity.token = token;
  return {
    identity: Object.freeze(identity),
    issuer: iss,
    notBeforeMs: nbf === undefined ? undefined : nbf * 1000,
  };
}

/** Deepest `act` chain read; the token service mints at most 8 (token-exchange-rules.ts). */
export const MAX_ACTORS = 8;

function readActors(act: unknown): string[] {
  const actors: string[] = [];
  for (let a = act; a !== undefined; a = (a as Record<string, unknown>).act) {
    if (typeof a !== "object" || a === null || Array.isArray(a) || actors.length === MAX_ACTORS) {
      throw malformed("act");
    }
    const sub = (a as Record<string, unknown>).sub;
    if (!isNonEmptyString(sub)) throw malformed("act");
    actors.push(sub);
  }
  return actors;
}

function splitScopes(scope: string): string[] {
  const scopes = scope.split(" ");
  return scopes.includes("") ? scopes.filter((s) => s !== "") : scopes;
}

/**
 * `exp` (with skew) → `token_expired`; `nbf` or `iat` later than now plus skew → `token_not_yet_valid`.
 * All times in epoch ms.
 */
export function checkTimes(token: VerifiedToken, nowMs: number, skewMs: number): void {
  if (token.identity.expiresAt * 1000 + skewMs <= nowMs) {
    throw new GatehouseError("token_expired", "token has expired");
  }
  // Stryker disable next-line ConditionalExpression: without the guard, undefined - skew is NaN, never > now
  if (token.notBeforeMs !== undefined && token.notBeforeMs - skewMs > nowMs) {
    throw new GatehouseError("token_not_yet_valid", "token is not valid yet (nbf)");
  }
  if (token.identity.issuedAt * 1000 - skewMs > nowMs) {
    throw new GatehouseError("token_not_yet_valid", "token is issued in the future (iat)");
  }
}

/** The token's `aud` must share one value with `accepted`; an empty `accepted` accepts nothing. */
export function checkAudience(audience: readonly string[], accepted: readonly string[]): void {
  for (const a of audience) if (accepted.includes(a)) return;
  throw new GatehouseError("wrong_audience", "token is not meant for this audience", {
    metadata: { audience: accepted.join(" ") },
  });
}

/** `allOf`: every scope; `anyOf`: at least one. Metadata names what was required and what is missing. */
export function checkScopes(scopes: readonly string[], required: Requirement["scopes"]): void {
  if (required === undefined) return;
  const { allOf, anyOf } = required;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: an empty allOf misses nothing either way
  if (allOf !== undefined && allOf.length > 0) {
    const missing = allOf.filter((s) => !scopes.includes(s));
    if (missing.length > 0) {
      throw new GatehouseError("insufficient_scope", `token lacks scope ${missing.join(" ")}`, {
        metadata: { scope: allOf.join(" "), missing: missing.join(" "), requirement: "allOf" },
      });
    }
  }
  if (anyOf !== undefined && anyOf.length > 0 && !anyOf.some((s) => scopes.includes(s))) {
    throw new GatehouseError("insufficient_scope", `token needs one of the scopes ${anyOf.join(" ")}`, {
      metadata: { scope: anyOf.join(" "), missing: anyOf.join(" "), requirement: "anyOf" },
    });
  }
}

/**
 * A route's `actors`: the token's immediate actor (the service that exchanged it and called with it)
 * must be one of them. A token with no actor at all is its subject calling in person: refused too.
 */
export function checkActor(
  actors: readonly string[] | undefined,
  required: readonly string[] | undefined,
): void {
  if (required === undefined) return;
  const actor = actors?.[0];
  if (actor !== undefined && required.includes(actor)) return;
  throw new GatehouseError(
    "actor_not_allowed",
    actor === undefined ? "route requires an actor; token has none" : "route does not admit this actor",
    { metadata: { actor: required.join(" ") } },
  );
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

function isTime(value: unknown): value is number {
  // Stryker disable next-line ConditionalExpression: Number.isFinite is false for non-numbers; the typeof narrows the type
  return typeof value === "number" && Number.isFinite(value);
}

function malformed(claim: string): GatehouseError {
  return new GatehouseError("malformed_token", `claim ${claim} is missing or has the wrong type`, {
    metadata: { claim },
  });
}

function deepFreeze<T extends object>(value: T): T {
  for (const key in value) {
    const member = value[key];
    if (typeof member === "object" && member !== null) deepFreeze(member);
  }
  return Object.freeze(value);
}
