import { KeyObject, type webcrypto } from "node:crypto";
import { importJWK, type JWK } from "jose";
import { algorithmOfKey, isVerifyAlgorithm, type VerifyAlgorithm } from "./key-algorithm.ts";

export interface VerificationKey {
  readonly kid: string;
  readonly alg: VerifyAlgorithm;
  readonly key: KeyObject;
}

interface SkippedKey {
  readonly kid: string | undefined;
  readonly reason: string;
}

export interface ImportedKeySet {
  readonly keys: ReadonlyMap<string, VerificationKey>;
  readonly skipped: readonly SkippedKey[];
}

/** Members that only a private or symmetric JWK has. A published key carrying one is a leak, not a key. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;

/**
 * Imports a JWK Set (`{ "keys": [...] }`) into verification keys by kid. A bad key is skipped with
 * its reason, never failing the set: `use` other than `sig`, `key_ops` without `verify`, private
 * members, a key type or curve we do not verify, an `alg` that does not fit `kty`/`crv`, RSA under
 * 2048 bits, a repeated kid (the first wins). A document that is not a JWK Set throws.
 */
export async function importJwks(document: unknown): Promise<ImportedKeySet> {
  const list = (document as { keys?: unknown } | null)?.keys;
  if (typeof document !== "object" || document === null || !Array.isArray(list)) {
    throw new TypeError('JWKS is not an object with a "keys" array');
  }
  const keys = new Map<string, VerificationKey>();
  const skipped: SkippedKey[] = [];
  for (const jwk of list) {
    const kid = typeof jwk?.kid === "string" ? jwk.kid : undefined;
    const result = await importOne(jwk);
    if (typeof result === "string") skipped.push({ kid, reason: result });
    else if (keys.has(result.kid)) skipped.push({ kid, reason: "kid appears twice; the first is kept" });
    else keys.set(result.kid, result);
  }
  return { keys, skipped };
}

/** A VerificationKey, or why this JWK is not one. */
async function importOne(jwk: unknown): Promise<VerificationKey | string> {
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) return "not an object";
  const j = jwk as Record<string, unknown>;
  if (typeof j.kid !== "string" || j.kid.length === 0 || j.kid.length > 256) return "no usable kid";
  if (j.use !== undefined && j.use !== "sig") return `use is ${String(j.use)}, not sig`;
  if (j.key_ops !== undefined && !(Array.isArray(j.key_ops) && j.key_ops.includes("verify"))) {
    return "key_ops does not allow verify";
  }
  const leaked = PRIVATE_MEMBERS.filter((m) => j[m] !== undefined);
  if (leaked.length > 0) return `has private members (${leaked.join(", ")})`;
  const inferred = algorithmOf(j.kty, j.crv);
  if (inferred === null)
    return `key type ${String(j.kty)}${j.crv === undefined ? "" : `/${String(j.crv)}`} is not supported`;
  if (j.alg !== undefined && j.alg !== inferred) {
    return isVerifyAlgorithm(j.alg)
      ? `alg ${j.alg} does not fit ${String(j.kty)}`
      : `alg ${String(j.alg)} is not supported`;
  }
  const { kty, crv, x, y, n, e } = j;
  const members = Object.fromEntries(
    Object.entries({ kty, crv, x, y, n, e }).filter(([, v]) => v !== undefined),
  );
  let key: KeyObject;
  try {
    const imported = await importJWK(members as JWK, inferred);
    if (imported instanceof Uint8Array) return "is a symmetric key";
    key = KeyObject.from(imported as webcrypto.CryptoKey);
  } catch (err) {
    return `cannot be imported: ${(err as Error).message}`;
  }
  if (algorithmOfKey(key) !== inferred) return "key is too weak or not a public key";
  return { kid: j.kid, alg: inferred, key };
}

function algorithmOf(kty: unknown, crv: unknown): VerifyAlgorithm | null {
  if (kty === "OKP" && crv === "Ed25519") return "EdDSA";
  if (kty === "EC" && crv === "P-256") return "ES256";
  if (kty === "RSA") return "RS256";
  return null;
}
