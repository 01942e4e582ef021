import type { KeyObject } from "node:crypto";
import {
  type GeneratedKey,
  generateSigningKey,
  privateKeyFromPkcs8,
  publicKeyFromJwk,
  SIGNING_ALGORITHMS,
  type SigningAlgorithm,
} from "../../services/token/keys/signing-key-material.ts";

/** A signing key as the token service generates it, with both halves imported for signing and verifying. */
export interface TestKey extends GeneratedKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** One fresh key of every algorithm the token service can sign with. */
export async function generateTestKeys(): Promise<Record<SigningAlgorithm, TestKey>> {
  const keys = {} as Record<SigningAlgorithm, TestKey>;
  for (const alg of SIGNING_ALGORITHMS) {
    const k = await generateSigningKey(alg);
    keys[alg] = { ...k, privateKey: privateKeyFromPkcs8(k.pkcs8), publicKey: publicKeyFromJwk(k.publicJwk) };
  }
  return keys;
}
