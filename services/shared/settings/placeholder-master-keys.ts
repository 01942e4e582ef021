import { createHash } from "node:crypto";

/**
 * Master keys anyone can read: every example key this repository has ever published (deploy files,
 * docs, README), by the SHA-256 of its 32 bytes so the list does not republish them. A token service
 * running on one encrypts its signing keys with a key an attacker holding a database dump already
 * has. test/unit/placeholder-master-keys.test.ts fails when an example key is added without its
 * fingerprint here.
 */
const PUBLISHED_KEY_SHA256 = new Set([
  // deploy/compose/master-key.env: "DEV-ONLY-gatehouse-master-key-32"
  "d7115b74d9c853635180e3deaafd9cc0cf7c6decc70c3504d4f3814dfdad1362",
]);

export const MASTER_KEY_HOWTO = "generate one with: openssl rand -base64 32";

/** True for a published example key, or a key of 32 equal bytes (all zeros, a key typed by hand). */
export function isPlaceholderMasterKey(key: Uint8Array): boolean {
  if (key.every((b) => b === key[0])) return true;
  return PUBLISHED_KEY_SHA256.has(createHash("sha256").update(key).digest("hex"));
}
