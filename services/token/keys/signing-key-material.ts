import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint, type JWK } from "jose";

export const SIGNING_ALGORITHMS = ["EdDSA", "ES256", "RS256"] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** The public half as published in the JWKS: only public members, never `d`, `p`, `q`... */
export interface PublicJwk {
  kty: string;
  kid: string;
  use: "sig";
  alg: SigningAlgorithm;
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

export interface GeneratedKey {
  kid: string;
  algorithm: SigningAlgorithm;
  publicJwk: PublicJwk;
  /** PKCS#8 DER of the private key: encrypt before it goes anywhere. */
  pkcs8: Buffer;
}

function generatePair(
  algorithm: SigningAlgorithm,
  rsaBits: number,
): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (algorithm) {
    case "EdDSA":
      return generateKeyPairSync("ed25519");
    case "ES256":
      return generateKeyPairSync("ec", { namedCurve: "P-256" });
    case "RS256":
      return generateKeyPairSync("rsa", { modulusLength: rsaBits });
  }
}

/** A new key pair whose `kid` is its RFC 7638 thumbprint. */
export async function generateSigningKey(
  algorithm: SigningAlgorithm = "EdDSA",
  rsaBits = 2048,
): Promise<GeneratedKey> {
  if (algorithm === "RS256" && rsaBits !== 2048 && rsaBits !== 3072) {
    throw new TypeError("RS256 keys are 2048 or 3072 bits");
  }
  const { privateKey, publicKey } = generatePair(algorithm, rsaBits);
  const jwk = publicKey.export({ format: "jwk" }) as JWK;
  const kid = await calculateJwkThumbprint(jwk, "sha256");
  const publicJwk = { ...pickPublic(jwk), kid, use: "sig", alg: algorithm } as PublicJwk;
  return { kid, algorithm, publicJwk, pkcs8: privateKey.export({ format: "der", type: "pkcs8" }) };
}

function pickPublic(jwk: JWK): Partial<PublicJwk> {
  const { kty, crv, x, y, n, e } = jwk;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, v]) => v !== undefined));
}

export function privateKeyFromPkcs8(pkcs8: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" });
}

export function publicKeyFromJwk(jwk: PublicJwk): KeyObject {
  return createPublicKey({ key: jwk as unknown as import("node:crypto").JsonWebKey, format: "jwk" });
}
