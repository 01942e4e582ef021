import { hash, type KeyObject } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { GatehouseErrorCode } from "../../shared/errors/codes.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import {
  algorithmOfKey,
  isVerifyAlgorithm,
  VERIFY_ALGORITHMS,
  type VerifyAlgorithm,
} from "../jwks/key-algorithm.ts";
import type { RevocationCode, RevocationState } from "../revocation-state/revocation-state.ts";
import {
  checkActor,
  checkAudience,
  checkScopes,
  checkTimes,
  readClaims,
  type VerifiedToken,
} from "./claim-checks.ts";
import { type CheckedHeader, createHeaderReader } from "./header-checks.ts";
import type { Identity, Requirement } from "./identity.ts";
import { verifySignature } from "./signature.ts";
import { MAX_TOKEN_LENGTH, splitToken, type TokenParts } from "./token-parts.ts";

/**
 * Finds the public key for a token's `kid`. Throws `GatehouseError("unknown_key")` when there is
 * none. May return a promise (a JWKS refetch on an unknown kid); the hot path stays synchronous.
 */
export type KeyResolver = (header: {
  readonly kid: string;
  readonly alg: VerifyAlgorithm;
}) => KeyObject | Promise<KeyObject>;

type Decision = GatehouseErrorCode | "ok";

export interface VerifierOptions {
  /** Expected `iss`, compared exactly. */
  issuer: string;
  /** Audiences accepted when a route names none. Empty: such routes accept no token (fail closed). */
  audiences?: readonly string[];
  /** Accepted algorithms, a subset of EdDSA, ES256, RS256. Default: all three. */
  algorithms?: readonly string[];
  /** Tolerance for `exp`, `nbf` and `iat`. Default 30 s. */
  clockSkewMs?: number;
  resolveKey: KeyResolver;
  revocation: RevocationState;
  /** When the revocation state is stale: reject with `revocation_state_stale` (default) or accept. */
  failOpen?: boolean;
  /** Verified-token cache size; 0 disables it. Default 10,000. */
  cacheMaxEntries?: number;
  /** Put the raw token in `Identity.token` (for forwarding it upstream). Default false. */
  exposeToken?: boolean;
  /** Epoch ms. Default `Date.now`. */
  now?: () => number;
  /** Called once per verify with its outcome, the time it took, and whether the cache answered. */
  onDecision?: (decision: Decision, durationMs: number, cached: boolean) => void;
}

export interface Verifier {
  /**
   * Verifies an access token for a route. Resolves with the Identity or rejects with a
   * GatehouseError whose `code` is the reason. `nowMs` defaults to the verifier's clock.
   */
  verify(token: string, requirement?: Requirement, nowMs?: number): Promise<Identity>;
  /** Entries in the verified-token cache. */
  readonly cacheSize: number;
}

/**
 * Builds the sidecar's token verifier from a key resolver and a revocation state. Checks run in a
 * fixed order, each failing with its own reason: shape, header, key, signature, claim types, issuer,
 * expiry and not-before, audience, scopes, revocation. A bounded cache keyed by the token's SHA-256
 * remembers tokens that passed the first six, until they expire; a hit still runs the last four.
 * A kid whose key is of another type than the header's `alg` (an RS256 token naming an Ed25519 key)
 * is `unsupported_algorithm`, not `bad_signature`: no signature was checked, the pairing is refused.
 *
 * @example
 * const jwks = createJwksCache({ url: `${tokenServiceUrl}/.well-known/jwks.json` });
 * const verifier = createVerifier({ issuer, audiences: ["orders"], resolveKey: jwks.keyResolver, revocation });
 * const identity = await verifier.verify(token, { scopes: { allOf: ["orders:read"] } });
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = options.issuer;
  // Stryker disable next-line StringLiteral: message text
  if (typeof issuer !== "string" || issuer === "") throw new TypeError("issuer is required");
  const algorithms = options.algorithms ?? VERIFY_ALGORITHMS;
  const unsupported = algorithms.filter((a) => !isVerifyAlgorithm(a));
  if (algorithms.length === 0 || unsupported.length > 0) {
    // Stryker disable next-line StringLiteral: message text
    throw new TypeError(
      `algorithms must be among ${VERIFY_ALGORITHMS.join(", ")}; got ${algorithms.join(", ")}`,
    );
  }
  const readHeader = createHeaderReader(new Set(algorithms));
  const defaultAudiences = Object.freeze([...(options.audiences ?? [])]);
  const skewMs = options.clockSkewMs ?? 30_000;
  // Stryker disable next-line StringLiteral: message text
  if (!(skewMs >= 0 && skewMs <= 300_000)) throw new TypeError("clockSkewMs must be within 0..300000");
  const maxEntries = options.cacheMaxEntries ?? 10_000;
  if (!(Number.isSafeInteger(maxEntries) && maxEntries >= 0))
    throw new TypeError("cacheMaxEntries must be ≥ 0");
  const { resolveKey, revocation, onDecision } = options;
  const failOpen = options.failOpen ?? false;
  const exposeToken = options.exposeToken ?? false;
  const clock = options.now ?? Date.now;
  const cache = maxEntries > 0 ? new LRUCache<string, VerifiedToken>({ max: maxEntries }) : undefined;

  /**
   * Shape, header, key, signature, claim types, issuer: everything that depends on the token alone.
   * Synchronous unless the key resolver answers with a promise.
   */
  function verifyToken(token: string): VerifiedToken | Promise<VerifiedToken> {
    const parts = splitToken(token);
    const header = readHeader(parts.encodedHeader);
    let key: KeyObject | Promise<KeyObject>;
    try {
      key = resolveKey(header);
    } catch (err) {
      throw GatehouseError.from(err);
    }
    if (key instanceof Promise) {
      return key.then(
        (k) => verifyWithKey(token, parts, header, k),
        (err) => {
          throw GatehouseError.from(err);
        },
      );
    }
    return verifyWithKey(token, parts, header, key);
  }

  function verifyWithKey(
    token: string,
    parts: TokenParts,
    header: CheckedHeader,
    key: KeyObject,
  ): VerifiedToken {
    if (algorithmOfKey(key) !== header.alg) {
      throw new GatehouseError("unsupported_algorithm", `key ${header.kid} is not a key for ${header.alg}`);
    }
    if (!verifySignature(header.alg, key, parts.signingInput, parts.signature)) {
      throw new GatehouseError("bad_signature", "signature does not verify");
    }
    const verified = readClaims(parts.payload, header.kid, exposeToken ? token : undefined);
    if (verified.issuer !== issuer) throw new GatehouseError("wrong_issuer", "token is from another issuer");
    return verified;
  }

  /** Time, audience, scopes, actor, revocation: what may change between two uses of one token. */
  function checkUse(verified: VerifiedToken, requirement: Requirement | undefined, nowMs: number): void {
    checkTimes(verified, nowMs, skewMs);
    const identity = verified.identity;
    const audiences = requirement?.audiences;
    checkAudience(
      identity.audience,
      audiences !== undefined && audiences.length > 0 ? audiences : defaultAudiences,
    );
    checkScopes(identity.scopes, requirement?.scopes);
    checkActor(identity.actors, requirement?.actors);
    const revoked = revocation.check(identity);
    if (revoked !== null) throw new GatehouseError(revoked, REVOKED_MESSAGES[revoked]);
    if (!failOpen && revocation.isStale(nowMs)) {
      throw new GatehouseError(
        "revocation_state_stale",
        "revocation state is not current; try again shortly",
        {
          retryAfterMs: 1000,
        },
      );
    }
  }

  async function verify(
    token: string,
    requirement?: Requirement,
    nowMs: number = clock(),
  ): Promise<Identity> {
    // Stryker disable next-line ConditionalExpression,EqualityOperator: only whether the clock is read; durations are not asserted
    const started = onDecision === undefined ? 0 : performance.now();
    let cached = false;
    try {
      if (typeof token !== "string" || token.length === 0) {
        throw new GatehouseError("missing_token", "no access token");
      }
      // Oversized tokens are refused before they cost a hash (splitToken checks this again).
      // Stryker disable next-line all: splitToken refuses the same tokens; this only spares the hash
      if (token.length > MAX_TOKEN_LENGTH) throw new GatehouseError("malformed_token", "token is too long");
      const cacheKey = cache === undefined ? undefined : hash("sha256", token, "base64");
      let verified = cacheKey === undefined ? undefined : cache!.get(cacheKey);
      if (verified === undefined) {
        const result = verifyToken(token);
        verified = result instanceof Promise ? await result : result;
        // Stryker disable next-line ArithmeticOperator: the ttl bounds memory only; every hit re-checks expiry
        const ttl = verified.identity.expiresAt * 1000 + skewMs - nowMs;
        if (cacheKey !== undefined && ttl > 0) cache!.set(cacheKey, verified, { ttl });
      } else {
        cached = true;
      }
      checkUse(verified, requirement, nowMs);
      // Stryker disable next-line ArithmeticOperator: durations are not asserted
      onDecision?.("ok", performance.now() - started, cached);
      return verified.identity;
    } catch (err) {
      const error = GatehouseError.from(err);
      // Stryker disable next-line ArithmeticOperator: durations are not asserted
      onDecision?.(error.code, performance.now() - started, cached);
      throw error;
    }
  }

  return {
    verify,
    get cacheSize() {
      return cache?.size ?? 0;
    },
  };
}

const REVOKED_MESSAGES: Readonly<Record<RevocationCode, string>> = {
  token_revoked: "token has been revoked",
  session_revoked: "session has been revoked",
  subject_revoked: "all tokens of this subject have been revoked",
  client_disabled: "the client this token was issued to is disabled",
  key_revoked: "the key that signed this token has been revoked",
};
