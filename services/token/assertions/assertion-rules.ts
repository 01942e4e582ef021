import { decodeJwt, decodeProtectedHeader, type JWTPayload } from "jose";
import type { GatehouseErrorCode } from "../../shared/errors/codes.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { isVerifyAlgorithm, type VerifyAlgorithm } from "../../sidecar/jwks/key-algorithm.ts";

/** `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2). */
export const JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** Assertions are short JWTs; a Kubernetes service-account token is about 1 KiB. */
const MAX_ASSERTION_LENGTH = 8192;

/** Refuses an assertion with its own reason; the message is for the caller, never holds the token. */
export function refuse(code: GatehouseErrorCode & `assertion_${string}`, message: string): GatehouseError {
  return new GatehouseError(code, message);
}

/** An assertion as read before its signature is checked: nothing in it is trusted yet. */
export interface UnverifiedAssertion {
  readonly token: string;
  readonly alg: VerifyAlgorithm;
  readonly kid: string;
  readonly iss: string;
  readonly sub: string;
  readonly claims: JWTPayload;
}

/**
 * Reads the header and claims of a compact JWS. Refuses with `assertion_algorithm_mismatch` an
 * `alg` outside EdDSA/ES256/RS256 (never `none` or HMAC: a client's JWKS holds public keys only),
 * and with `assertion_malformed` anything that is not a JWT with a `kid`, a string `iss` and `sub`.
 */
export function readAssertion(token: string): UnverifiedAssertion {
  if (token.length === 0 || token.length > MAX_ASSERTION_LENGTH) {
    throw refuse(
      "assertion_malformed",
      `client assertion must be a JWT of at most ${MAX_ASSERTION_LENGTH} bytes`,
    );
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  let claims: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    throw refuse("assertion_malformed", "client assertion is not a signed JWT");
  }
  if (token.split(".").length !== 3)
    throw refuse("assertion_malformed", "client assertion is not a signed JWT");
  if (!isVerifyAlgorithm(header.alg)) {
    throw refuse("assertion_algorithm_mismatch", `client assertion alg ${String(header.alg)} is not allowed`);
  }
  if (typeof header.kid !== "string" || header.kid === "") {
    throw refuse("assertion_malformed", "client assertion header has no kid");
  }
  if (
    typeof claims.iss !== "string" ||
    claims.iss === "" ||
    typeof claims.sub !== "string" ||
    claims.sub === ""
  ) {
    throw refuse("assertion_malformed", "client assertion needs string iss and sub claims");
  }
  return { token, alg: header.alg, kid: header.kid, iss: claims.iss, sub: claims.sub, claims };
}

export interface AssertionClaimRules {
  /** Values `aud` may name: our issuer and our token endpoint URL (RFC 7523 §3 item 3). */
  readonly audiences: readonly string[];
  /** Now, in epoch seconds. */
  readonly nowS: number;
  /** Longest `exp - iat` (or `exp - now` without `iat`) accepted. */
  readonly maxLifetimeS: number;
  /** Tolerated clock difference with the assertion's signer. */
  readonly skewS: number;
  /** private_key_jwt assertions need a `jti` for the replay cache; federated tokens are reusable. */
  readonly requireJti: boolean;
}

/** What the checks leave for the caller: when the assertion stops being good, and its `jti`. */
export interface AcceptedClaims {
  readonly expiresAtS: number;
  readonly jti: string | undefined;
}

/** The time claims and audience of a signature-checked assertion, each refusal its own reason. */
export function checkAssertionClaims(claims: JWTPayload, rules: AssertionClaimRules): AcceptedClaims {
  const aud = claims.aud;
  const audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.some((a) => typeof a === "string" && rules.audiences.includes(a))) {
    throw refuse(
      "assertion_wrong_audience",
      "client assertion aud must be this server's issuer or token endpoint",
    );
  }
  const { exp, nbf, iat } = claims;
  if (!isTime(exp)) throw refuse("assertion_malformed", "client assertion needs a numeric exp");
  if ((nbf !== undefined && !isTime(nbf)) || (iat !== undefined && !isTime(iat))) {
    throw refuse("assertion_malformed", "client assertion nbf and iat must be numeric dates");
  }
  const { nowS, skewS } = rules;
  if (exp <= nowS - skewS) throw refuse("assertion_expired", "client assertion has expired");
  if ((nbf !== undefined && nbf > nowS + skewS) || (iat !== undefined && iat > nowS + skewS)) {
    throw refuse("assertion_not_yet_valid", "client assertion is not valid yet (nbf or iat in the future)");
  }
  const lifetime = iat === undefined ? exp - nowS - skewS : exp - iat;
  if (lifetime > rules.maxLifetimeS) {
    throw refuse(
      "assertion_lifetime_too_long",
      `client assertion lives longer than the ${rules.maxLifetimeS} s this server accepts`,
    );
  }
  const jti = claims.jti;
  if (rules.requireJti && (typeof jti !== "string" || jti === "" || jti.length > 256)) {
    throw refuse("assertion_malformed", "client assertion needs a jti of 1-256 characters");
  }
  return { expiresAtS: exp, jti: typeof jti === "string" ? jti : undefined };
}

function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}
