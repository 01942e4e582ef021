import { createPublicKey, type KeyObject, sign } from "node:crypto";

/**
 * Ed25519 signatures for the access tokens every Issue and Refresh mints, made by libsodium
 * (sodium-native's prebuilt addon) instead of node:crypto. Ed25519 is deterministic (RFC 8032), so
 * both give the same bytes for the same key and message. Measured here (Node 20, OpenSSL 3.0, one
 * core): 37 µs a signature through node:crypto, 17 µs through libsodium; paired Refresh load, the
 * service used 0.875× the CPU per call (README, issue 15, eighth pass). Where sodium-native has no
 * build for the platform, node:crypto signs, and `ed25519Implementation` says why.
 */
export interface Libsodium {
  crypto_sign_seed_keypair(publicKey: Buffer, secretKey: Buffer, seed: Buffer): void;
  crypto_sign_detached(signature: Buffer, message: Buffer, secretKey: Buffer): void;
  /** Memory outside the V8 heap: guard pages, locked where allowed, wiped when the Buffer is collected. */
  sodium_malloc(size: number): Buffer;
  sodium_memzero(buffer: Buffer): void;
}

export type Ed25519Implementation = { name: "libsodium" } | { name: "node:crypto"; reason: string };

const loaded = await import("sodium-native").then(
  (m) => ({ lib: m.default as Libsodium, implementation: { name: "libsodium" } as const }),
  (err: unknown) => ({
    lib: null,
    implementation: {
      name: "node:crypto",
      reason: `sodium-native did not load: ${err instanceof Error ? err.message : String(err)}`,
    } as const,
  }),
);

/** Which code signs Ed25519 tokens in this process: for the start-up log. */
export const ed25519Implementation: Ed25519Implementation = loaded.implementation;

/** DER of an Ed25519 PKCS#8 private key up to its 32-byte seed (RFC 8410). */
const PKCS8_SEED_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * A signing function for one Ed25519 private key. With libsodium, the key's 64-byte secret form
 * lives in sodium's guarded memory and the exported seed is wiped at once. `lib` is the library
 * loaded at start-up, null where it did not load (tests pass null to take node:crypto's path).
 */
export function createEd25519Signer(
  privateKey: KeyObject,
  lib: Libsodium | null = loaded.lib,
): (message: Buffer) => Buffer {
  if (privateKey.asymmetricKeyType !== "ed25519" || privateKey.type !== "private")
    throw new TypeError("not an Ed25519 private key");
  if (lib === null) return (message) => sign(null, message, privateKey);
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const publicKey = Buffer.alloc(32);
  const secretKey = lib.sodium_malloc(64);
  try {
    if (
      der.length !== PKCS8_SEED_PREFIX.length + 32 ||
      !der.subarray(0, PKCS8_SEED_PREFIX.length).equals(PKCS8_SEED_PREFIX)
    )
      throw new TypeError("unexpected PKCS#8 encoding of an Ed25519 key");
    lib.crypto_sign_seed_keypair(publicKey, secretKey, der.subarray(PKCS8_SEED_PREFIX.length));
  } finally {
    lib.sodium_memzero(der);
  }
  // The public half libsodium derived must be the key's own: proof the seed was read right.
  const expected = createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(-32);
  if (!publicKey.equals(expected)) throw new Error("libsodium derived another Ed25519 public key");
  return (message) => {
    const signature = Buffer.allocUnsafe(64);
    lib.crypto_sign_detached(signature, message, secretKey);
    return signature;
  };
}
