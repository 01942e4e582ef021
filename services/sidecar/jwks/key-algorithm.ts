import type { KeyObject } from "node:crypto";

/** The JWS algorithms a sidecar can ever accept. HMAC and `none` are absent on purpose. */
export const VERIFY_ALGORITHMS = ["EdDSA", "ES256", "RS256"] as const;
export type VerifyAlgorithm = (typeof VERIFY_ALGORITHMS)[number];

const known = new Set<string>(VERIFY_ALGORITHMS);

export function isVerifyAlgorithm(value: unknown): value is VerifyAlgorithm {
  return typeof value === "string" && known.has(value);
}

/** RSA keys shorter than this are refused, whatever the JWKS says (RFC 7518 §3.3). */
const MIN_RSA_BITS = 2048;

const fitted = new WeakMap<KeyObject, VerifyAlgorithm | null>();

/**
 * The one algorithm a public key can verify: Ed25519 → EdDSA, P-256 → ES256, RSA ≥ 2048 bits →
 * RS256, anything else (private keys, secrets, other curves) → null. Memoized per KeyObject, so the
 * hot path pays one WeakMap lookup.
 */
export function algorithmOfKey(key: KeyObject): VerifyAlgorithm | null {
  let alg = fitted.get(key);
  if (alg === undefined) {
    alg = inspect(key);
    fitted.set(key, alg);
  }
  return alg;
}

function inspect(key: KeyObject): VerifyAlgorithm | null {
  if (key.type !== "public") return null;
  switch (key.asymmetricKeyType) {
    case "ed25519":
      return "EdDSA";
    case "ec":
      return key.asymmetricKeyDetails?.namedCurve === "prime256v1" ? "ES256" : null;
    case "rsa":
      return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS ? "RS256" : null;
    default:
      return null;
  }
}
